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

/// Map: host-side veth ifindex -> [`EndpointInfo`]. Written by the daemon on connect.
pub const MAP_ENDPOINTS_BY_IFINDEX: &str = "EP_BY_IFINDEX";
/// Map: sandbox IPv4 -> [`EndpointInfo`]. Written by the daemon on connect.
pub const MAP_ENDPOINTS_BY_IP: &str = "EP_BY_IP";
/// Map: network id -> [`NetworkInfo`]. Written by the daemon on network create/connect.
pub const MAP_NETWORKS: &str = "NETWORKS";
/// Map: LPM (subnet) -> network id. Written by the daemon on network create.
pub const MAP_SUBNETS: &str = "SUBNETS";
/// Map: [`MemberKey`] -> host-side ifindex. Written by the daemon on connect/disconnect.
pub const MAP_MEMBERS: &str = "MEMBERS";
/// Map: per-CPU counters, index `net_id * STAT_SLOTS + slot`. Written by the programs.
pub const MAP_STATS: &str = "STATS";

/// Name of the tc program attached at tcx ingress of every host-side veth.
pub const PROG_FROM_SANDBOX: &str = "from_sandbox";

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
};
