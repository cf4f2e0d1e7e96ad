//! Decapsulation, in `from_uplink`: VXLAN from another host to this host's tunnel address
//! is checked against what the cluster store says lives there, stripped and handed
//! straight to the sandbox with redirect_peer. Everything else passes untouched.

use aya_ebpf::{
    bindings::{
        bpf_adj_room_mode::BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_DECAP_L3_IPV4, BPF_F_ADJ_ROOM_FIXED_GSO,
    },
    programs::TcContext,
};
use netd_common::{Delivery, DropReason, IPPROTO_UDP, NET_FLAG_ICC, VXLAN_OVERHEAD, VXLAN_PORT};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

use crate::{
    encap, lookup,
    maps::{NETWORKS, OVERLAY_CONFIG, VNIS},
    packet::{ip_u32, ptr_at, ETH_P_IP},
    route, uplink,
    verdict::{Delivered, Dropped, Verdict},
    vxlan::{Tunnel, FLAG_VNI},
};

/// Remove what encapsulation inserted. FIXED_GSO: a super-packet keeps the gso_size the
/// sender's TCP chose for the inner segments (the encapsulating side keeps it too).
/// Kernel 6.18 has no flag to also clear skb->encapsulation and SKB_GSO_UDP_TUNNEL of a
/// decapsulated super-packet (BPF_F_ADJ_ROOM_DECAP_L4_UDP is newer); a sandbox's own
/// stack receives such a packet fine, as it only segments what it forwards.
const DECAP_FLAGS: u64 = (BPF_F_ADJ_ROOM_DECAP_L3_IPV4 | BPF_F_ADJ_ROOM_FIXED_GSO) as u64;

/// Stats row of packets no network can be named for (as in `uplink`).
const NO_NETWORK: u32 = 0;

/// A whole encapsulated frame's headers, up to the inner IPv4 header.
#[repr(C)]
struct Encapsulated {
    outer: EthHdr,
    tunnel: Tunnel,
    inner_ip: Ipv4Hdr,
}

/// Offset of the outer UDP header: outer Ethernet + IPv4 without options.
const UDP_OFFSET: usize = EthHdr::LEN + Ipv4Hdr::LEN;
const HEADERS_LEN: u32 = core::mem::size_of::<Encapsulated>() as u32;

/// Handles the packet if it is VXLAN to this host (`ip` is its outer IPv4 header);
/// `None` leaves it to the rest of `from_uplink`, with the packet untouched.
#[inline(always)]
pub fn vxlan_to_us(ctx: &TcContext, ip: &Ipv4Hdr) -> Option<Verdict> {
    if ip.proto != IPPROTO_UDP {
        return None;
    }
    let config = OVERLAY_CONFIG.get(0)?;
    // Options and fragments are not ours to take apart: the host reassembles (and drops).
    if ip.dst_addr != config.local_ip
        || config.local_ip == [0; 4]
        || ip.vihl != 0x45
        || u16::from_be_bytes(ip.frags) & 0x3fff != 0
    {
        return None;
    }
    // SAFETY: bounds-checked by ptr_at.
    let udp = unsafe { &*ptr_at::<UdpHdr>(ctx, UDP_OFFSET)? };
    if udp.dst != VXLAN_PORT.to_be_bytes() {
        return None;
    }
    // It is ours from here on: the pull below invalidates the caller's packet pointers,
    // so every path returns a verdict.
    Some(decap(ctx))
}

#[inline(always)]
fn decap(ctx: &TcContext) -> Verdict {
    let malformed = Dropped {
        net_id: NO_NETWORK,
        reason: DropReason::Malformed,
    };
    let frame = headers(ctx).ok_or(malformed)?;
    let tunnel = &frame.tunnel;
    if tunnel.vxlan.flags & FLAG_VNI == 0 {
        // Not VXLAN after all (RFC 7348 requires the flag): the host's to refuse.
        return uplink::pass();
    }
    // SAFETY: the daemon writes whole u32 values.
    let net_id = *unsafe { VNIS.get(tunnel.vxlan.vni()) }.ok_or(Dropped {
        net_id: NO_NETWORK,
        reason: DropReason::UnknownVni,
    })?;
    let drop = |reason| Dropped { net_id, reason };
    if tunnel.inner.ether_type != ETH_P_IP {
        return Err(drop(DropReason::UnsupportedProtocol));
    }
    let inner = &frame.inner_ip;
    if inner.vihl >> 4 != 4 || inner.vihl & 0x0f < 5 {
        return Err(drop(DropReason::Malformed));
    }
    // The sender must be an endpoint of this network on the host the packet comes from.
    match encap::remote(ip_u32(inner.src_addr)) {
        Some(src) if src.net_id == net_id && src.vtep == tunnel.ip.src_addr => {}
        _ => return Err(drop(DropReason::SpoofedIp)),
    }
    let ep = match lookup::by_ip(ip_u32(inner.dst_addr)) {
        Some(ep) if ep.net_id == net_id => ep,
        _ => return Err(drop(DropReason::UnknownDestination)),
    };
    match NETWORKS.get(net_id) {
        Some(net) if net.flags & NET_FLAG_ICC != 0 => {}
        _ => return Err(drop(DropReason::IccDisabled)),
    }
    let src_mac = tunnel.inner.src_addr;
    // Packet pointers (`frame`) are invalid from here on.
    ctx.adjust_room(-(VXLAN_OVERHEAD as i32), BPF_ADJ_ROOM_MAC, DECAP_FLAGS)
        .map_err(|_| drop(DropReason::RedirectFailed))?;
    // The outer Ethernet header now fronts the inner packet: address it like the inner one
    // was, to the endpoint from the remote sandbox.
    let action = route::into_sandbox(ctx, ep.host_ifindex, &ep.mac, &src_mac).map_err(drop)?;
    Ok(Delivered {
        net_id,
        delivery: Delivery::Decap,
        action,
    })
}

/// The frame's headers up to the inner IPv4 header, pulled into the linear area first if
/// the driver left part of them in fragments.
#[inline(always)]
fn headers(ctx: &TcContext) -> Option<&Encapsulated> {
    if ptr_at::<Encapsulated>(ctx, 0).is_none() && ctx.len() >= HEADERS_LEN {
        // A failed pull leaves the frame short, and the read below reports it.
        let _ = ctx.pull_data(HEADERS_LEN);
    }
    // SAFETY: bounds-checked by ptr_at.
    ptr_at::<Encapsulated>(ctx, 0).map(|p| unsafe { &*p })
}
