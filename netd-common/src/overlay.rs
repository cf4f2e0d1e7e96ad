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

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain old data, repr(C), no padding (asserted below).
    unsafe impl aya::Pod for RemoteEndpoint {}
    unsafe impl aya::Pod for OverlayConfig {}
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<RemoteEndpoint>() == 20);
    assert!(offset_of!(RemoteEndpoint, vni) == 4);
    assert!(offset_of!(RemoteEndpoint, net_id) == 8);
    assert!(offset_of!(RemoteEndpoint, mac) == 12);
    assert!(size_of::<OverlayConfig>() == 8);
};
