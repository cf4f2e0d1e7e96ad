//! Shared helpers for netd's test suites: `harness` drives a real daemon and CLI in
//! network namespaces; `packets` builds frames for BPF_PROG_TEST_RUN tables.
pub mod harness;
pub mod packets;
