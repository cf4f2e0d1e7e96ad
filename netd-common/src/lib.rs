//! Types shared by the kernel programs (`netd-ebpf`) and the daemon (`netd`).
//!
//! Every struct is `#[repr(C)]`, has no hidden padding, and has its size asserted below,
//! so both sides of the kernel boundary can never disagree on a map's layout.
#![no_std]

pub mod maps;
pub mod nat;
pub mod overlay;
pub mod stats;

pub use maps::*;
pub use nat::*;
pub use overlay::*;
pub use stats::*;
