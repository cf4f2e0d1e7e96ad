//! Packet tests of `from_sandbox` through BPF_PROG_TEST_RUN, table-driven: a sender, an
//! input frame, the expected verdict, the expected output frame and the one counter that
//! must move. Plus map-state and attach checks of the loader. Needs root (CAP_BPF).
//!
//! Under BPF_PROG_TEST_RUN the program sees the frame arrive on `lo` (ifindex 1), so each
//! case registers its sending endpoint at `TEST_RUN_IFINDEX`. `overlay` covers VXLAN
//! encapsulation (from_sandbox) and decapsulation (from_uplink).

mod arp;
mod cache;
mod ipv4;
mod loader;
mod nat;
mod overlay;
mod world;
