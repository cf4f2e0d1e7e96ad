//! Keys and values of the dataplane's BPF maps. Map names live here too so the daemon
//! can open the pins the programs created.

/// An IPv4 address as it appears on the wire (network byte order).
pub type Ipv4Bytes = [u8; 4];
/// An Ethernet MAC address.
pub type MacBytes = [u8; 6];

/// One endpoint: a sandbox's veth pair. Keyed by the host-side ifindex (who is sending)
/// and by the sandbox's IPv4 address (where to deliver).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointInfo {
    /// ifindex of the host-side veth; redirect_peer on it reaches the sandbox's ethN.
    pub host_ifindex: u32,
    /// Dataplane id of the endpoint's network (see [`NetworkInfo`]).
    pub net_id: u32,
    /// The only source IPv4 the sandbox may use.
    pub ip: Ipv4Bytes,
    /// The only source MAC the sandbox may use.
    pub mac: MacBytes,
    pub _pad: [u8; 2],
}

/// Network flag: containers on the network may talk to each other (`enable_icc`).
pub const NET_FLAG_ICC: u32 = 1 << 0;
/// Network flag: the network is `--internal` and reaches nothing outside its subnet.
pub const NET_FLAG_INTERNAL: u32 = 1 << 1;
/// Network flag: `enable_ip_masquerade=false`: the network is routed to and from the
/// uplinks as is. A flag for "off" so that Docker's default (on) is the zero value.
pub const NET_FLAG_NO_MASQUERADE: u32 = 1 << 2;

/// One network, keyed by its dataplane id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The gateway address, answered by the program and owned by the host.
    pub gateway_ip: Ipv4Bytes,
    /// `NET_FLAG_*` bits.
    pub flags: u32,
    /// Number of valid slots in the network's member list (see [`MemberKey`]).
    pub member_count: u32,
    /// The MAC every host-side veth of this network carries; sandboxes see it as the gateway.
    pub gateway_mac: MacBytes,
    /// Prefix length of the network's subnet; the program derives the subnet broadcast
    /// address from it and `gateway_ip`. Was padding before, so an old zero means "unknown".
    pub prefix_len: u8,
    pub _pad: [u8; 1],
}

/// A slot in a network's dense member list, used to flood broadcast and multicast.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemberKey {
    pub net_id: u32,
    pub slot: u32,
}

/// Upper bound on members a flood visits; the verifier needs a constant loop bound.
pub const MAX_FLOOD_MEMBERS: u32 = 256;
/// Largest dataplane network id plus one; sizes the per-network stats array.
pub const MAX_NETWORKS: u32 = 1024;
/// Capacity of the endpoint maps.
pub const MAX_ENDPOINTS: u32 = 16384;

/// Slots in each endpoint cache; a power of two, so a slot is a few instructions away.
pub const EP_CACHE_SLOTS: u32 = 1 << EP_CACHE_SLOT_BITS;
/// log2 of [`EP_CACHE_SLOTS`].
pub const EP_CACHE_SLOT_BITS: u32 = 14;

/// Slot of a host-side ifindex in the ifindex cache: its low bits. The kernel hands out
/// ifindexes in sequence, so endpoints collide only after 16k interface creations.
pub const fn ifindex_slot(ifindex: u32) -> u32 {
    ifindex & (EP_CACHE_SLOTS - 1)
}

/// Slot of an address key (wire-order bytes read as a native u32) in the IP cache:
/// Fibonacci hashing, so that e.g. the `.2` of every /24 or /16 lands in a different slot.
pub const fn ip_slot(ip_key: u32) -> u32 {
    ip_key.wrapping_mul(0x9e37_79b1) >> (32 - EP_CACHE_SLOT_BITS)
}

/// Map: host-side veth ifindex -> [`EndpointInfo`]. Written by the daemon on connect.
pub const MAP_ENDPOINTS_BY_IFINDEX: &str = "EP_BY_IFINDEX";
/// Map: sandbox IPv4 -> [`EndpointInfo`]. Written by the daemon on connect.
pub const MAP_ENDPOINTS_BY_IP: &str = "EP_BY_IP";
/// Map: [`ifindex_slot`] -> [`EndpointInfo`], a direct-mapped cache in front of
/// EP_BY_IFINDEX (a slot counts only if its `host_ifindex` is the looked-up one). Written by
/// the daemon alongside EP_BY_IFINDEX.
pub const MAP_EP_CACHE_BY_IFINDEX: &str = "EP_IFX_CACHE";
/// Map: [`ip_slot`] -> [`EndpointInfo`], a direct-mapped cache in front of EP_BY_IP (a slot
/// counts only if its `ip` is the looked-up one and it is not empty). Written by the daemon
/// alongside EP_BY_IP.
pub const MAP_EP_CACHE_BY_IP: &str = "EP_IP_CACHE";
/// Map: network id -> [`NetworkInfo`]. Written by the daemon on network create/connect.
pub const MAP_NETWORKS: &str = "NETWORKS";
/// Map: LPM (subnet) -> network id. Written by the daemon on network create.
pub const MAP_SUBNETS: &str = "SUBNETS";
/// Map: [`MemberKey`] -> host-side ifindex. Written by the daemon on connect/disconnect.
pub const MAP_MEMBERS: &str = "MEMBERS";
/// Map: per-CPU counters, index `net_id * STAT_SLOTS + slot`. Written by the programs.
pub const MAP_STATS: &str = "STATS";

/// Name of the tc program attached at tc ingress of every host-side veth.
pub const PROG_FROM_SANDBOX: &str = "from_sandbox";
/// tc egress of every host veth: what the host's stack sends into the sandbox.
pub const PROG_TO_SANDBOX: &str = "to_sandbox";

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain old data, repr(C), no padding (asserted below).
    unsafe impl aya::Pod for EndpointInfo {}
    unsafe impl aya::Pod for NetworkInfo {}
    unsafe impl aya::Pod for MemberKey {}
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<EndpointInfo>() == 20);
    assert!(offset_of!(EndpointInfo, ip) == 8);
    assert!(offset_of!(EndpointInfo, mac) == 12);
    assert!(size_of::<NetworkInfo>() == 20);
    assert!(offset_of!(NetworkInfo, gateway_mac) == 12);
    assert!(offset_of!(NetworkInfo, prefix_len) == 18);
    assert!(size_of::<MemberKey>() == 8);
    assert!(EP_CACHE_SLOTS.is_power_of_two());
    assert!(ip_slot(u32::MAX) < EP_CACHE_SLOTS);
};
