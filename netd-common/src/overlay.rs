//! The overlay (VXLAN) maps: endpoints on other hosts, the VNI of each overlay network,
//! and this host's tunnel address. `from_sandbox` encapsulates to remote endpoints;
//! `from_uplink` decapsulates what other hosts send.

use crate::{Ipv4Bytes, MacBytes};

/// IANA's VXLAN port (RFC 7348), the outer UDP destination port.
pub const VXLAN_PORT: u16 = 4789;
/// Outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD: u32 = 50;

/// An endpoint of an overlay network that lives on another host, keyed by its IPv4
/// address (wire order read as a native u32). Written by the daemon from the cluster store.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteEndpoint {
    /// Underlay address of the host the endpoint lives on (the outer destination).
    pub vtep: Ipv4Bytes,
    /// VNI of the endpoint's network (host order, 24 bits).
    pub vni: u32,
    /// Dataplane id of the endpoint's network on this host.
    pub net_id: u32,
    /// The endpoint's MAC: the inner destination, and what ARP for it is answered with.
    pub mac: MacBytes,
    pub _pad: [u8; 2],
}

/// Slot 0 of OVERLAY_CONFIG.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct OverlayConfig {
    /// This host's underlay address: the outer source of encapsulated packets and the
    /// only outer destination decapsulated. 0.0.0.0: overlay off.
    pub local_ip: Ipv4Bytes,
    pub _pad: u32,
}

/// Map: remote endpoint IPv4 -> [`RemoteEndpoint`]. Written by the daemon.
pub const MAP_REMOTE_ENDPOINTS: &str = "REMOTE_EPS";
/// Map: VNI (native u32) -> network id. Written by the daemon on overlay network create/rm.
pub const MAP_VNIS: &str = "VNIS";
/// Map: slot 0 -> [`OverlayConfig`]. Written by the daemon at start.
pub const MAP_OVERLAY_CONFIG: &str = "OVERLAY_CONFIG";

/// One slot of NEXT_HOPS: how to reach a remote tunnel address, as the last route lookup
/// on this CPU answered (`vtep` all-zero: empty slot).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NextHop {
    /// The tunnel address this slot is for.
    pub vtep: Ipv4Bytes,
    /// Interface the route leaves through.
    pub ifindex: u32,
    /// The next hop's MAC (outer Ethernet destination).
    pub dmac: MacBytes,
    /// The interface's MAC (outer Ethernet source).
    pub smac: MacBytes,
    /// Longest frame (not a GSO super-packet) the lookup's MTU check lets through: the
    /// interface MTU + Ethernet header + VLAN tag. Longer ones go back to the lookup.
    pub max_len: u32,
    /// bpf_ktime_get_coarse_ns time after which the slot is looked up again.
    pub expires_ns: u64,
}

/// Slots of NEXT_HOPS (a power of two), per CPU; tunnel addresses map onto them by
/// [`next_hop_slot`]. Two hosts' addresses sharing a slot only cost each other lookups.
pub const NEXT_HOP_SLOTS: u32 = 1 << NEXT_HOP_SLOT_BITS;
pub const NEXT_HOP_SLOT_BITS: u32 = 10;

/// The NEXT_HOPS slot of tunnel address `vtep` (wire-order u32): a multiplicative hash, so
/// addresses differing only in their last octet spread over the slots.
#[inline(always)]
pub const fn next_hop_slot(vtep: u32) -> u32 {
    vtep.wrapping_mul(0x9e37_79b1) >> (32 - NEXT_HOP_SLOT_BITS)
}

/// Map: per-CPU array of [`NextHop`], [`NEXT_HOP_SLOTS`] slots: the encapsulation's cache
/// in front of the route lookup to remote tunnel addresses. Written by the programs only
/// (entries expire on their own), never pinned: a reload starts it empty.
pub const MAP_NEXT_HOPS: &str = "NEXT_HOPS";

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain old data, repr(C), no padding (asserted below).
    unsafe impl aya::Pod for RemoteEndpoint {}
    unsafe impl aya::Pod for OverlayConfig {}
    unsafe impl aya::Pod for NextHop {}
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RemoteEndpoint>() == 20);
    assert!(offset_of!(RemoteEndpoint, vni) == 4);
    assert!(offset_of!(RemoteEndpoint, net_id) == 8);
    assert!(offset_of!(RemoteEndpoint, mac) == 12);
    assert!(size_of::<OverlayConfig>() == 8);
    assert!(size_of::<NextHop>() == 32);
    assert!(offset_of!(NextHop, dmac) == 8);
    assert!(offset_of!(NextHop, max_len) == 20);
    assert!(offset_of!(NextHop, expires_ns) == 24);
};
