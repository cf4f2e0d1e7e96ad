//! Shared helpers for netd's test suites: `harness` drives a real daemon and CLI in
//! network namespaces; `packets` builds frames for BPF_PROG_TEST_RUN tables, and
//! `uplink_netns` gives the ones that route a netns of their own.
pub mod harness;
pub mod packets;
pub mod uplink_netns;
