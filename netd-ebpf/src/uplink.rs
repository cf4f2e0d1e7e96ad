//! `from_uplink`, at tc ingress of every uplink (and of the overlay's underlay interface):
//! the outside world's way in. VXLAN from other hosts is decapsulated (`decap`); replies of
//! masqueraded flows and packets to published ports are translated and handed straight to
//! the sandbox with redirect_peer; routed networks are reached as is; everything else is
//! the host's and passes untouched.
//!
//! tc rather than XDP: delivery is redirect_peer into a veth's peer, which only tc has;
//! XDP_REDIRECT into a veth would build an skb anyway and needs an XDP program on the
//! peer. And tc sees the skb's checksum state, which the incremental NAT rewrite keeps.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use netd_common::{
    Delivery, DropReason, NatEntry, NatKind, PublishTarget, IPPROTO_UDP, NAT_FLAG_OUT,
    NET_FLAG_INTERNAL, NET_FLAG_NO_MASQUERADE,
};

use crate::{
    decap,
    flow::{classify, Flow, L4Kind},
    host_socket, icmp_error, lookup,
    maps::NETWORKS,
    nat::{self, Via},
    packet::{self, ip_u32, ETH_P_IP},
    publish, route,
    verdict::{Delivered, Dropped, Verdict},
};

/// Stats row of the uplink program: network 0, which no network has.
const UPLINK_ROW: u32 = 0;

#[inline(always)]
pub fn handle(ctx: &TcContext) -> Verdict {
    packet::linearize(ctx);
    let Some(eth) = packet::ethernet(ctx) else {
        return pass();
    };
    if eth.ether_type != ETH_P_IP {
        return pass();
    }
    let Some(ip) = packet::ipv4(ctx) else {
        return pass();
    };
    if let Some(verdict) = decap::vxlan_to_us(ctx, ip) {
        return verdict;
    }
    let dst = ip.dst_addr;
    match classify(ctx, ip) {
        L4Kind::Flow(flow) => {
            if let Some(entry) = nat::lookup(&flow) {
                return deliver(ctx, &flow, &entry, UPLINK_ROW);
            }
            // A UDP datagram a host socket would receive is the host's (e.g. the reply to
            // its own query from a port that happens to be published): it stays.
            let hosts = flow.key.proto == IPPROTO_UDP && host_socket::owns(ctx, &flow.key);
            if flow.opens() && !hosts && publish::is_host_address(dst) {
                if let Some(target) = publish::target(&flow.key) {
                    return publish(ctx, &flow, &target);
                }
            }
        }
        L4Kind::IcmpError => {
            if let Some(verdict) = icmp_error::translate(ctx) {
                return verdict;
            }
        }
        L4Kind::Other => {}
    }
    to_endpoint_address(ctx, dst)
}

/// Opens a flow from the outside to a published port. The client's address stays; the
/// reply leaves through the uplink the route to the client picks.
#[inline(always)]
fn publish(ctx: &TcContext, flow: &Flow, target: &PublishTarget) -> Verdict {
    let key = &flow.key;
    let mut forward = nat::entry(
        NatKind::Dnat,
        (key.src_ip, key.src_port),
        (target.ip, target.port),
        Via::backend(target),
    );
    // Whichever uplink the route to the client picks: the reply's source is the host
    // address the client chose, not an uplink's own.
    let mut reply = nat::reply_to(key, NatKind::Dnat, Via::Uplink(0));
    if nat::open(key, &mut forward, &mut reply).is_err() {
        return Err(Dropped {
            net_id: target.net_id,
            reason: DropReason::NatPortsExhausted,
        });
    }
    deliver(ctx, flow, &forward, target.net_id)
}

/// A packet addressed to a sandbox itself: routed networks take it; masquerading ones
/// are reachable only through published ports; internal ones not at all.
#[inline(always)]
fn to_endpoint_address(ctx: &TcContext, dst: [u8; 4]) -> Verdict {
    let Some(ep) = lookup::by_ip(ip_u32(dst)) else {
        return pass();
    };
    let Some(net) = NETWORKS.get(ep.net_id) else {
        return pass();
    };
    let refuse = |reason| {
        Err(Dropped {
            net_id: ep.net_id,
            reason,
        })
    };
    if net.flags & NET_FLAG_INTERNAL != 0 {
        return refuse(DropReason::InternalNetwork);
    }
    if net.flags & NET_FLAG_NO_MASQUERADE == 0 {
        return refuse(DropReason::NotPublished);
    }
    match route::into_sandbox(ctx, ep.host_ifindex, &ep.mac, &net.gateway_mac) {
        Ok(action) => Ok(inbound(ep.net_id, action)),
        Err(reason) => refuse(reason),
    }
}

/// Rewrites the packet to `entry` and hands it to the sandbox the entry names.
#[inline(always)]
pub fn deliver(ctx: &TcContext, flow: &Flow, entry: &NatEntry, net_id: u32) -> Verdict {
    let failed = |reason| Dropped { net_id, reason };
    if entry.flags & NAT_FLAG_OUT != 0 {
        // Only replies leaving a sandbox are routed out; one arriving here is not ours.
        return pass();
    }
    nat::rewrite(ctx, flow, entry).map_err(|_| failed(DropReason::RedirectFailed))?;
    route::into_sandbox(ctx, entry.ifindex, &entry.dst_mac, &entry.src_mac)
        .map(|action| inbound(net_id, action))
        .map_err(failed)
}

#[inline(always)]
pub fn inbound(net_id: u32, action: i32) -> Delivered {
    Delivered {
        net_id,
        delivery: Delivery::Inbound,
        action,
    }
}

/// To the host stack, untouched.
#[inline(always)]
pub fn pass() -> Verdict {
    Ok(Delivered {
        net_id: UPLINK_ROW,
        delivery: Delivery::Host,
        action: TC_ACT_OK,
    })
}
