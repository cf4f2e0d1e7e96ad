//! Encapsulation: a sandbox's packet to an endpoint of its overlay network on another
//! host leaves in VXLAN, straight out of whatever interface the route to that host's
//! tunnel address takes. No vxlan device and no trip through the host stack: the
//! program inserts the outer headers itself.

use aya_ebpf::{
    bindings::{
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, BPF_ADJ_ROOM_ENCAP_L2_SHIFT,
        BPF_F_ADJ_ROOM_ENCAP_L2_ETH, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4, BPF_F_ADJ_ROOM_ENCAP_L4_UDP,
        BPF_F_ADJ_ROOM_FIXED_GSO,
    },
    programs::TcContext,
};
use netd_common::{
    Delivery, DropReason, RemoteEndpoint, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, VXLAN_OVERHEAD,
    VXLAN_PORT,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

use crate::{
    maps::{OVERLAY_CONFIG, REMOTE_EPS},
    packet::{ptr_at, ETH_P_IP},
    policy, route,
    verdict::{Sender, Verdict},
    vxlan::{ipv4_checksum, Tunnel, VxlanHdr},
};

/// Room inserted after the outer Ethernet header, and how the kernel must see it:
/// - ENCAP_*: the skb becomes a UDP tunnel carrying Ethernet (inner headers and
///   SKB_GSO_UDP_TUNNEL set), so a TSO super-packet from the sandbox is segmented (in
///   software or by the NIC) into complete VXLAN packets with the inner headers repeated.
/// - FIXED_GSO: keep gso_size. The sandbox's MTU is the underlay's minus the overhead, so
///   its MSS already leaves room for the 50 bytes; without the flag the kernel would cut
///   each segment 50 bytes shorter than the underlay carries.
const ENCAP_FLAGS: u64 = (BPF_F_ADJ_ROOM_FIXED_GSO
    | BPF_F_ADJ_ROOM_ENCAP_L3_IPV4
    | BPF_F_ADJ_ROOM_ENCAP_L4_UDP
    | BPF_F_ADJ_ROOM_ENCAP_L2_ETH) as u64
    | (EthHdr::LEN as u64) << BPF_ADJ_ROOM_ENCAP_L2_SHIFT;

/// Outer source ports come from this range (RFC 7348: 49152-65535), one per inner flow, so
/// the underlay's ECMP and the receiver's RSS spread flows like the inner packets would.
const SPORT_BASE: u16 = 0xc000;
const SPORT_MASK: u32 = 0x3fff;

/// The endpoint on another host that owns `ip` (wire-order u32), if any.
#[inline(always)]
pub fn remote(ip: u32) -> Option<&'static RemoteEndpoint> {
    // SAFETY: the daemon replaces entries whole.
    unsafe { REMOTE_EPS.get(ip) }
}

/// Encapsulates the packet (`ip` is its IPv4 header) to `remote`'s host.
#[inline(always)]
pub fn to_remote(
    ctx: &TcContext,
    sender: &Sender,
    ip: &Ipv4Hdr,
    remote: &RemoteEndpoint,
) -> Verdict {
    policy::may_reach_network(sender, remote.net_id)?;
    let local_ip = match OVERLAY_CONFIG.get(0) {
        Some(config) if config.local_ip != [0; 4] => config.local_ip,
        // Remote endpoints but no tunnel address: the daemon is mid-setup.
        _ => return Err(sender.drop(DropReason::NoRoute)),
    };
    // The outer IPv4 length field must hold the whole frame (a TCP super-packet is
    // bounded by the default 64 KiB GSO size well below this).
    let outer_len = ctx.len() - EthHdr::LEN as u32 + VXLAN_OVERHEAD;
    if outer_len > u32::from(u16::MAX) {
        return Err(sender.drop(DropReason::Malformed));
    }
    let tunnel = tunnel(ctx, sender, ip, remote, local_ip, outer_len as u16);
    // Packet pointers (`ip`) are invalid from here on; nothing below reads the packet.
    ctx.adjust_room(VXLAN_OVERHEAD as i32, BPF_ADJ_ROOM_MAC, ENCAP_FLAGS)
        .map_err(|_| sender.drop(DropReason::RedirectFailed))?;
    ctx.store(EthHdr::LEN, &tunnel, 0)
        .map_err(|_| sender.drop(DropReason::RedirectFailed))?;
    // The outer Ethernet header is the sandbox's, moved to the front: the route fills in
    // the next hop's addresses (its type is IPv4 already).
    route::out_any(ctx, local_ip, remote.vtep)
        .map(|action| sender.delivered(Delivery::Encap, action))
        .map_err(|reason| sender.drop(reason))
}

/// The headers to insert: outer IPv4 (TTL 64, DF off so the underlay may fragment, the
/// inner packet's id), UDP without checksum (RFC 7348 allows 0 over IPv4; the inner
/// packet carries its own), VXLAN, and the inner Ethernet header addressed to the remote
/// endpoint from the sender.
#[inline(always)]
fn tunnel(
    ctx: &TcContext,
    sender: &Sender,
    ip: &Ipv4Hdr,
    remote: &RemoteEndpoint,
    local_ip: [u8; 4],
    outer_len: u16,
) -> Tunnel {
    let mut outer = Ipv4Hdr {
        vihl: 0x45,
        tos: 0,
        tot_len: outer_len.to_be_bytes(),
        id: ip.id,
        frags: [0; 2],
        ttl: 64,
        proto: IPPROTO_UDP,
        check: [0; 2],
        src_addr: local_ip,
        dst_addr: remote.vtep,
    };
    outer.check = ipv4_checksum(&outer);
    Tunnel {
        ip: outer,
        udp: UdpHdr {
            src: source_port(ctx, ip).to_be_bytes(),
            dst: VXLAN_PORT.to_be_bytes(),
            len: (outer_len - Ipv4Hdr::LEN as u16).to_be_bytes(),
            check: [0; 2],
        },
        vxlan: VxlanHdr::new(remote.vni),
        inner: EthHdr {
            dst_addr: remote.mac,
            src_addr: sender.ep.mac,
            ether_type: ETH_P_IP,
        },
    }
}

/// A hash of the inner flow (addresses, protocol and, for TCP/UDP/SCTP, ports) folded into
/// the range. Computed here rather than with bpf_get_hash_recalc: the flow dissector that
/// helper runs for packets without a socket hash costs ~150 ns, this a few instructions.
/// Fragments hash without ports, so all of a datagram's fragments take one path.
#[inline(always)]
fn source_port(ctx: &TcContext, ip: &Ipv4Hdr) -> u16 {
    let not_fragment = u16::from_be_bytes(ip.frags) & 0x3fff == 0;
    let has_ports = matches!(ip.proto, IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP);
    let ports = match ptr_at::<[u8; 4]>(ctx, EthHdr::LEN + Ipv4Hdr::LEN) {
        // SAFETY: bounds-checked by ptr_at.
        Some(p) if ip.vihl == 0x45 && not_fragment && has_ports => {
            u32::from_ne_bytes(unsafe { *p })
        }
        _ => 0,
    };
    let mut h = u32::from_ne_bytes(ip.src_addr)
        ^ u32::from_ne_bytes(ip.dst_addr).rotate_left(16)
        ^ ports.rotate_left(8)
        ^ u32::from(ip.proto);
    // A multiply-xorshift finaliser (murmur3's) spreads every input bit over the top bits.
    h = (h ^ (h >> 16)).wrapping_mul(0x85eb_ca6b);
    h = (h ^ (h >> 13)).wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    SPORT_BASE | (h & SPORT_MASK) as u16
}
