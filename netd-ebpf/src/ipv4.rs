//! IPv4: anti-spoofing, then where the destination lives: a group address (flood), the
//! gateway (the host, or a NAT flow), a peer sandbox (redirect_peer), an endpoint of the
//! overlay on another host (`encap`), another netd subnet, or beyond them all (`egress`).

use aya_ebpf::programs::TcContext;
use netd_common::{DropReason, EndpointInfo, NetworkInfo};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    egress, encap,
    flood::flood,
    lookup,
    maps::{host_key, NETWORKS, SUBNETS},
    packet::{self, ip_u32, is_group_mac},
    policy, redirect,
    verdict::{Sender, Verdict},
};

#[inline(always)]
pub fn handle(ctx: &TcContext, sender: &Sender, eth: &EthHdr) -> Verdict {
    let ip = packet::ipv4(ctx).ok_or(sender.drop(DropReason::Malformed))?;
    if ip.vihl >> 4 != 4 || ip.vihl & 0x0f < 5 {
        return Err(sender.drop(DropReason::Malformed));
    }
    if ip_u32(ip.src_addr) != ip_u32(sender.ep.ip) {
        return Err(sender.drop(DropReason::SpoofedIp));
    }
    let dst = ip_u32(ip.dst_addr);
    if is_group_mac(&eth.dst_addr) || is_group_ip(ip.dst_addr) {
        return flood(ctx, sender);
    }
    if dst == ip_u32(sender.net.gateway_ip) {
        return egress::to_gateway(ctx, sender, ip);
    }
    if let Some(peer) = lookup::by_ip(dst) {
        return to_peer(ctx, sender, eth, peer);
    }
    beyond_endpoints(ctx, sender, dst, ip)
}

/// Limited broadcast or multicast (224.0.0.0/4).
#[inline(always)]
fn is_group_ip(dst: [u8; 4]) -> bool {
    dst == [255; 4] || dst[0] & 0xf0 == 0xe0
}

/// Unicast to a sandbox: allowed only within the network with icc on. The destination MAC
/// is set to the peer's (it is the gateway's when the sender routed rather than ARPed).
#[inline(always)]
fn to_peer(ctx: &TcContext, sender: &Sender, eth: &EthHdr, peer: &EndpointInfo) -> Verdict {
    policy::may_reach(sender, peer)?;
    if eth.dst_addr != peer.mac {
        ctx.store(0, &peer.mac, 0)
            .map_err(|_| sender.drop(DropReason::RedirectFailed))?;
    }
    redirect::into_peer(sender, peer.host_ifindex)
}

/// No local endpoint has the address: it is another network's gateway (the host owns it),
/// our subnet's broadcast, an overlay endpoint on another host, a free address in a netd
/// subnet, or outside every netd subnet. Remote endpoints are looked up only here, so
/// local traffic never pays for the overlay.
#[inline(always)]
fn beyond_endpoints(ctx: &TcContext, sender: &Sender, dst: u32, ip: &Ipv4Hdr) -> Verdict {
    let Some(&net_id) = SUBNETS.get(host_key(dst)) else {
        return egress::beyond_subnets(ctx, sender, ip);
    };
    if net_id == sender.ep.net_id {
        // The own gateway was handled before the endpoint lookup.
        if is_subnet_broadcast(ip.dst_addr, sender.net) {
            return flood(ctx, sender);
        }
        return match encap::remote(dst) {
            Some(remote) => encap::to_remote(ctx, sender, ip, remote),
            None => Err(sender.drop(DropReason::UnknownDestination)),
        };
    }
    match NETWORKS.get(net_id) {
        Some(other) if ip_u32(other.gateway_ip) == dst => {
            if sender.internal() {
                Err(sender.drop(DropReason::InternalNetwork))
            } else {
                egress::to_gateway(ctx, sender, ip)
            }
        }
        // Another network's endpoint, on another host: isolated like a local one.
        _ if encap::remote(dst).is_some() => Err(sender.drop(DropReason::NetworkIsolation)),
        _ => Err(sender.drop(DropReason::UnknownDestination)),
    }
}

/// The all-ones host part of the sender's subnet (prefixes /31 and /32 have none).
#[inline(always)]
fn is_subnet_broadcast(dst: [u8; 4], net: &NetworkInfo) -> bool {
    let prefix = u32::from(net.prefix_len);
    if prefix == 0 || prefix > 30 {
        return false;
    }
    let mask = u32::MAX << (32 - prefix);
    let dst = u32::from_be_bytes(dst);
    let gateway = u32::from_be_bytes(net.gateway_ip);
    dst & mask == gateway & mask && dst | mask == u32::MAX
}
