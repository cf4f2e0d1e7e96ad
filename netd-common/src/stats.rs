//! Counters: every packet the programs handle ends in exactly one slot, a delivery path or
//! a drop reason, per network.

/// Why a packet was dropped. A stable ABI: never renumber, and a retired reason stays as
/// `Unused` so old counters keep their meaning.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The frame is too short for the headers it claims.
    Malformed = 0,
    /// The frame came in on a veth that has no endpoint (e.g. mid-teardown).
    UnknownEndpoint = 1,
    /// Source MAC is not the endpoint's own.
    SpoofedMac = 2,
    /// Source IPv4 (or ARP sender) is not the endpoint's own.
    SpoofedIp = 3,
    /// Destination belongs to another network.
    NetworkIsolation = 4,
    /// Destination is on the same network, but the network has `enable_icc=false`.
    IccDisabled = 5,
    /// Destination is a netd subnet address that no endpoint holds.
    UnknownDestination = 6,
    /// The network is internal and the destination lies outside its subnet.
    InternalNetwork = 7,
    /// An ethertype the dataplane does not carry (e.g. IPv6 on an IPv4-only network).
    UnsupportedProtocol = 8,
    /// The kernel refused the redirect.
    RedirectFailed = 9,
    /// Masquerading found no free source port for a new flow.
    NatPortsExhausted = 10,
    /// The packet must be masqueraded but carries nothing NAT can key on (a fragment, IP
    /// options, a protocol other than TCP/UDP/SCTP/ICMP echo).
    NatUnsupported = 11,
    /// No route to the destination through any uplink.
    NoRoute = 12,
    /// From an uplink, to a sandbox of a masquerading network, outside any published flow.
    NotPublished = 13,
    /// Forwarded by the host into a sandbox from an interface that is not netd's (e.g.
    /// docker0 or another runtime's bridge): another network.
    ForeignInterface = 14,
    /// A VXLAN packet to this host with a VNI no overlay network has.
    UnknownVni = 15,
}

impl DropReason {
    pub const ALL: [DropReason; 16] = [
        DropReason::Malformed,
        DropReason::UnknownEndpoint,
        DropReason::SpoofedMac,
        DropReason::SpoofedIp,
        DropReason::NetworkIsolation,
        DropReason::IccDisabled,
        DropReason::UnknownDestination,
        DropReason::InternalNetwork,
        DropReason::UnsupportedProtocol,
        DropReason::RedirectFailed,
        DropReason::NatPortsExhausted,
        DropReason::NatUnsupported,
        DropReason::NoRoute,
        DropReason::NotPublished,
        DropReason::ForeignInterface,
        DropReason::UnknownVni,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownEndpoint => "unknown-endpoint",
            DropReason::SpoofedMac => "spoofed-mac",
            DropReason::SpoofedIp => "spoofed-ip",
            DropReason::NetworkIsolation => "network-isolation",
            DropReason::IccDisabled => "icc-disabled",
            DropReason::UnknownDestination => "unknown-destination",
            DropReason::InternalNetwork => "internal-network",
            DropReason::UnsupportedProtocol => "unsupported-protocol",
            DropReason::RedirectFailed => "redirect-failed",
            DropReason::NatPortsExhausted => "nat-ports-exhausted",
            DropReason::NatUnsupported => "nat-unsupported",
            DropReason::NoRoute => "no-route",
            DropReason::NotPublished => "not-published",
            DropReason::ForeignInterface => "foreign-interface",
            DropReason::UnknownVni => "unknown-vni",
        }
    }
}

/// Where a packet that was not dropped went. Stable like [`DropReason`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Unicast to a peer on the same network (redirect_peer).
    Peer = 0,
    /// Broadcast or multicast, copied to every other member.
    Flood = 1,
    /// Handed to the host stack: the gateway, the host's addresses, routed traffic.
    Host = 2,
    /// An ARP request for the gateway, answered by the program itself.
    ArpReply = 3,
    /// Out through an uplink (masqueraded, a published port's reply, or routed as is).
    Uplink = 4,
    /// From an uplink into a sandbox (a published port, a masqueraded flow's reply).
    Inbound = 5,
    /// From a sandbox to a published port on a host address, into the backend sandbox.
    Hairpin = 6,
    /// From a sandbox to an endpoint on another host, VXLAN-encapsulated to that host.
    Encap = 7,
    /// VXLAN from another host, decapsulated into a sandbox.
    Decap = 8,
}

impl Delivery {
    pub const ALL: [Delivery; 9] = [
        Delivery::Peer,
        Delivery::Flood,
        Delivery::Host,
        Delivery::ArpReply,
        Delivery::Uplink,
        Delivery::Inbound,
        Delivery::Hairpin,
        Delivery::Encap,
        Delivery::Decap,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Delivery::Peer => "peer",
            Delivery::Flood => "flood",
            Delivery::Host => "host",
            Delivery::ArpReply => "arp-reply",
            Delivery::Uplink => "uplink",
            Delivery::Inbound => "inbound",
            Delivery::Hairpin => "hairpin",
            Delivery::Encap => "encap",
            Delivery::Decap => "decap",
        }
    }
}

/// Slots per network in the stats array: the first deliveries, then drop reasons, then
/// the later deliveries. Slots never move (the array outlives daemon upgrades in its pin),
/// so deliveries past the first block start a block of their own at the top.
pub const STAT_SLOTS: u32 = 32;
/// First slot of the drop reasons; also the number of deliveries in the first block.
pub const STAT_DROP_BASE: u32 = 8;
/// Slot of delivery number `STAT_DROP_BASE`, the first of the later block.
pub const STAT_LATE_DELIVERY_BASE: u32 = 28;

/// Index of a delivery counter in the stats array.
pub const fn delivery_slot(net_id: u32, delivery: Delivery) -> u32 {
    let d = delivery as u32;
    let slot = if d < STAT_DROP_BASE {
        d
    } else {
        STAT_LATE_DELIVERY_BASE + (d - STAT_DROP_BASE)
    };
    net_id * STAT_SLOTS + slot
}

/// Index of a drop counter in the stats array.
pub const fn drop_slot(net_id: u32, reason: DropReason) -> u32 {
    net_id * STAT_SLOTS + STAT_DROP_BASE + reason as u32
}

/// One counter.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(feature = "user")]
// SAFETY: plain old data, repr(C), no padding.
unsafe impl aya::Pod for Counter {}

const _: () = {
    assert!(core::mem::size_of::<Counter>() == 16);
    assert!(STAT_DROP_BASE as usize + DropReason::ALL.len() <= STAT_LATE_DELIVERY_BASE as usize);
    assert!(
        STAT_LATE_DELIVERY_BASE as usize + Delivery::ALL.len() - STAT_DROP_BASE as usize
            <= STAT_SLOTS as usize
    );
    assert!(delivery_slot(0, Delivery::Hairpin) == 6);
    assert!(delivery_slot(0, Delivery::Encap) == 7);
    assert!(delivery_slot(0, Delivery::Decap) == STAT_LATE_DELIVERY_BASE);
};
