//! NAT and conntrack: the flow table, published ports, uplinks and host addresses that
//! `from_sandbox`, `from_uplink` and the cgroup socket hooks share with the daemon.

use crate::{Ipv4Bytes, MacBytes};

/// IP protocol numbers netd translates.
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_SCTP: u8 = 132;

/// One direction of a flow, as the packet carries it. Ports are in wire order. ICMP echo
/// uses its identifier as the port of the side that chose it: a request is
/// `(src_port = id, dst_port = 0)`, its reply `(src_port = 0, dst_port = id)`, so a reply's
/// key is exactly the request's [`FlowKey::reversed`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub src_ip: Ipv4Bytes,
    pub dst_ip: Ipv4Bytes,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}

/// One IPv4 datagram travelling in fragments, as its fragments' headers name it
/// (RFC 791: source, destination, protocol and identification).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragmentKey {
    pub src_ip: Ipv4Bytes,
    pub dst_ip: Ipv4Bytes,
    /// The IP identification field, as on the wire.
    pub id: u16,
    pub proto: u8,
    pub _pad: u8,
}

impl FlowKey {
    /// The key the other direction's packets carry.
    pub const fn reversed(&self) -> Self {
        FlowKey {
            src_ip: self.dst_ip,
            dst_ip: self.src_ip,
            src_port: self.dst_port,
            dst_port: self.src_port,
            proto: self.proto,
            _pad: [0; 3],
        }
    }
}

/// What kind of translation a flow gets; shown by `netd conntrack ls`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatKind {
    /// A sandbox reaching the outside, masqueraded to an uplink address.
    Snat = 1,
    /// The outside reaching a published port; the client's address is kept.
    Dnat = 2,
    /// A sandbox reaching a published port on a host address; the source becomes the
    /// backend network's gateway so the reply comes back through netd.
    Hairpin = 3,
}

impl NatKind {
    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(NatKind::Snat),
            2 => Some(NatKind::Dnat),
            3 => Some(NatKind::Hairpin),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            NatKind::Snat => "snat",
            NatKind::Dnat => "dnat",
            NatKind::Hairpin => "hairpin",
        }
    }
}

/// Entry flag: this entry translates the direction that opened the flow.
pub const NAT_FLAG_ORIGINAL: u8 = 1 << 0;
/// Entry flag: a TCP FIN or RST was seen; the flow gets the short closing timeout.
pub const NAT_FLAG_CLOSING: u8 = 1 << 1;
/// Entry flag: deliver out through uplink `ifindex` (else into the sandbox behind it).
pub const NAT_FLAG_OUT: u8 = 1 << 2;

/// How to translate one direction of a flow: the addresses and ports to write into the
/// packet, and where to deliver it. The twin entry (the other direction) is keyed by the
/// reverse of the rewritten tuple.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEntry {
    pub src_ip: Ipv4Bytes,
    pub dst_ip: Ipv4Bytes,
    pub src_port: u16,
    pub dst_port: u16,
    /// The uplink to route out of (`NAT_FLAG_OUT`; 0: whichever the route picks), else the
    /// host veth to redirect_peer into.
    pub ifindex: u32,
    /// MACs for delivery into a sandbox (unused when routed out).
    pub dst_mac: MacBytes,
    pub src_mac: MacBytes,
    /// [`NatKind`] as u8.
    pub kind: u8,
    /// `NAT_FLAG_*` bits.
    pub flags: u8,
    pub _pad: [u8; 2],
    /// bpf_ktime_get_ns of the last packet, refreshed at most once a second; the daemon's
    /// garbage collector expires entries from it.
    pub last_seen_ns: u64,
}

impl NatEntry {
    /// The rewritten tuple as a key; its reverse keys the twin entry.
    pub const fn translated(&self, proto: u8) -> FlowKey {
        FlowKey {
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto,
            _pad: [0; 3],
        }
    }
}

/// A published port: `(host IP or 0.0.0.0, host port, protocol)`. Port in wire order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PublishKey {
    pub host_ip: Ipv4Bytes,
    pub port: u16,
    pub proto: u8,
    pub _pad: u8,
}

/// Where a published port leads: the backend endpoint and its network's gateway.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishTarget {
    pub ip: Ipv4Bytes,
    /// Container port, wire order.
    pub port: u16,
    pub _pad: u16,
    /// Host-side veth of the backend.
    pub ifindex: u32,
    pub mac: MacBytes,
    pub gateway_mac: MacBytes,
    pub gateway_ip: Ipv4Bytes,
    pub net_id: u32,
}

/// An uplink: the address masqueraded traffic leaves with.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UplinkInfo {
    pub ifindex: u32,
    pub ip: Ipv4Bytes,
}

/// Slots of the UPLINKS array; the programs try them in order.
pub const MAX_UPLINKS: u32 = 4;

/// Settings of the NAT programs, slot 0 of NAT_CONFIG.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatConfig {
    /// SO_NETNS_COOKIE of the daemon's netns: the socket hooks act only on sockets there.
    pub host_netns_cookie: u64,
    /// Source ports masquerading picks from, host order, inclusive.
    pub port_min: u16,
    pub port_max: u16,
    pub _pad: u32,
}

/// A socket whose connect/sendmsg the hooks rewrote, and the backend it now talks to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockKey {
    pub cookie: u64,
    pub backend_ip: Ipv4Bytes,
    /// Wire order.
    pub backend_port: u16,
    pub _pad: u16,
}

/// The address the application asked for, shown back by getpeername/recvmsg.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockOrigin {
    pub ip: Ipv4Bytes,
    /// Wire order.
    pub port: u16,
    pub _pad: u16,
}

/// NAT counters (NAT_STATS, per CPU), indexed by these.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatCounter {
    /// Table entries the programs created (two per flow).
    EntriesCreated = 0,
    /// Entries the daemon deleted (expired, or their endpoint went away); CPU 0's slot,
    /// written by the daemon. Created - deleted - live = evicted by the LRU.
    EntriesDeleted = 1,
    /// Flows the programs could not give a source port (every candidate taken).
    PortsExhausted = 2,
    /// Socket connects/sends the cgroup hooks rewrote to a published port's backend.
    SocketsRewritten = 3,
}

pub const NAT_COUNTERS: u32 = 4;

/// Map: [`FlowKey`] -> [`NatEntry`], LRU; capacity from `--nat-max-entries`.
pub const MAP_NAT: &str = "NAT";
/// Map: [`PublishKey`] -> [`PublishTarget`]. Written by the daemon on connect -p.
pub const MAP_PUBLISHED: &str = "PUBLISHED";
/// Map: slot -> [`UplinkInfo`] (ifindex 0: empty). Written by the daemon at start.
pub const MAP_UPLINKS: &str = "UPLINKS";
/// Map: IPv4 of the host (wire-order u32) -> 1. Written by the daemon.
pub const MAP_HOST_ADDRS: &str = "HOST_ADDRS";
/// Map: 0 -> [`NatConfig`].
pub const MAP_NAT_CONFIG: &str = "NAT_CONFIG";
/// Map: [`SockKey`] -> [`SockOrigin`], LRU. Written by the socket hooks.
pub const MAP_SOCK_NAT: &str = "SOCK_NAT";
/// Map: per-CPU u64 counters indexed by [`NatCounter`].
pub const MAP_NAT_STATS: &str = "NAT_STATS";
/// Map: [`FragmentKey`] -> the [`FlowKey`] of the datagram's first fragment, LRU. Written by
/// the programs when they translate a first fragment.
pub const MAP_FRAGMENTS: &str = "FRAGMENTS";

/// Capacity of PUBLISHED (the bench publishes 100,000 ports).
pub const MAX_PUBLISHED: u32 = 131_072;
/// Capacity of HOST_ADDRS.
pub const MAX_HOST_ADDRS: u32 = 1024;
/// Capacity of SOCK_NAT.
pub const MAX_SOCK_NAT: u32 = 65_536;
/// Capacity of FRAGMENTS: datagrams whose later fragments may still come.
pub const MAX_FRAGMENTED_DATAGRAMS: u32 = 8192;
/// Default capacity of NAT.
pub const DEFAULT_NAT_ENTRIES: u32 = 65_536;

/// Programs of the NAT path.
pub const PROG_FROM_UPLINK: &str = "from_uplink";
pub const PROG_CONNECT4: &str = "connect4";
pub const PROG_SENDMSG4: &str = "sendmsg4";
pub const PROG_RECVMSG4: &str = "recvmsg4";
pub const PROG_GETPEERNAME4: &str = "getpeername4";

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: plain old data, repr(C), no padding (asserted below).
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for FragmentKey {}
    unsafe impl aya::Pod for NatEntry {}
    unsafe impl aya::Pod for PublishKey {}
    unsafe impl aya::Pod for PublishTarget {}
    unsafe impl aya::Pod for UplinkInfo {}
    unsafe impl aya::Pod for NatConfig {}
    unsafe impl aya::Pod for SockKey {}
    unsafe impl aya::Pod for SockOrigin {}
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<FlowKey>() == 16);
    assert!(size_of::<FragmentKey>() == 12);
    assert!(size_of::<NatEntry>() == 40);
    assert!(size_of::<PublishKey>() == 8);
    assert!(size_of::<PublishTarget>() == 32);
    assert!(size_of::<UplinkInfo>() == 8);
    assert!(size_of::<NatConfig>() == 16);
    assert!(size_of::<SockKey>() == 16);
    assert!(size_of::<SockOrigin>() == 8);
};
