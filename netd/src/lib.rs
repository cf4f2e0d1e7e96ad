//! netd: an eBPF dataplane for container networks. The binary (`main.rs`) is a thin
//! shell over this library: `cli` is the client, everything else is the daemon.

pub mod api;
pub mod cli;
pub mod cluster;
pub mod cni;
pub mod crashpoint;
pub mod daemon;
pub mod dataplane;
pub mod docker;
pub mod ipam;
pub mod model;
pub mod netlink;
pub mod ports;
pub mod service;
pub mod store;
