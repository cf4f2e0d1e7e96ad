//! What a sandbox sends to the host's addresses or beyond every netd subnet: flows the
//! NAT table already translates, published ports reached through a host address
//! (hairpin), masquerading out an uplink, or routing as is.

use aya_ebpf::programs::TcContext;
use netd_common::{
    Delivery, DropReason, Ipv4Bytes, NatEntry, NatKind, PublishTarget, NAT_FLAG_OUT,
};
use network_types::ip::Ipv4Hdr;

use crate::{
    flow::{classify, Flow, L4Kind},
    nat::{self, Via},
    publish, route,
    verdict::{Sender, Verdict},
};

/// To a netd gateway (the sender's or, unless the network is internal, another's).
#[inline(always)]
pub fn to_gateway(ctx: &TcContext, sender: &Sender, ip: &Ipv4Hdr) -> Verdict {
    let L4Kind::Flow(flow) = classify(ctx, ip) else {
        return sender.to_host();
    };
    if let Some(entry) = nat::lookup(&flow) {
        return deliver(ctx, sender, &flow, &entry);
    }
    host_service(ctx, sender, &flow)
}

/// Beyond every netd subnet: a translated flow, a host address, or the outside.
#[inline(always)]
pub fn beyond_subnets(ctx: &TcContext, sender: &Sender, ip: &Ipv4Hdr) -> Verdict {
    let l4 = classify(ctx, ip);
    if let L4Kind::Flow(flow) = &l4 {
        if let Some(entry) = nat::lookup(flow) {
            return deliver(ctx, sender, flow, &entry);
        }
    }
    // Internal networks reach neither the outside nor the host's other addresses.
    if sender.internal() {
        return Err(sender.drop(DropReason::InternalNetwork));
    }
    if let L4Kind::Flow(flow) = &l4 {
        if publish::is_host_address(ip.dst_addr) {
            return host_service(ctx, sender, flow);
        }
    }
    let Some(uplink) = route::uplink_for(ctx, sender.ep.ip, ip.dst_addr) else {
        // No uplink leads there: the host routes it, as the Linux bridge would.
        return sender.to_host();
    };
    if !sender.masquerade() {
        return out(ctx, sender, uplink.ifindex, sender.ep.ip, ip.dst_addr);
    }
    let L4Kind::Flow(flow) = l4 else {
        return Err(sender.drop(DropReason::NatUnsupported));
    };
    // Any packet may open a masqueraded flow, mid-stream TCP included (like conntrack's
    // loose pickup): a flow evicted from a full table resumes instead of stalling.
    let key = &flow.key;
    // The source port is chosen by open_with_port.
    let mut forward = nat::entry(
        NatKind::Snat,
        (uplink.ip, key.src_port),
        (key.dst_ip, key.dst_port),
        Via::Uplink(uplink.ifindex),
    );
    let mut reply = nat::reply_to(key, NatKind::Snat, into_sender(sender));
    nat::open_with_port(ctx, key, &mut forward, &mut reply)
        .map_err(|_| sender.drop(DropReason::NatPortsExhausted))?;
    deliver(ctx, sender, &flow, &forward)
}

/// A host address: a published port opens a hairpin flow; anything else is the host's.
#[inline(always)]
fn host_service(ctx: &TcContext, sender: &Sender, flow: &Flow) -> Verdict {
    if flow.opens() && !sender.internal() {
        if let Some(target) = publish::target(&flow.key) {
            return hairpin(ctx, sender, flow, &target);
        }
    }
    sender.to_host()
}

/// Into a published port's backend, from the backend network's gateway, so that its
/// replies come back through netd whichever network the sender is on (Docker does the
/// same for hairpin traffic).
#[inline(always)]
fn hairpin(ctx: &TcContext, sender: &Sender, flow: &Flow, target: &PublishTarget) -> Verdict {
    let key = &flow.key;
    // The source port is chosen by open_with_port.
    let mut forward = nat::entry(
        NatKind::Hairpin,
        (target.gateway_ip, key.src_port),
        (target.ip, target.port),
        Via::backend(target),
    );
    let mut reply = nat::reply_to(key, NatKind::Hairpin, into_sender(sender));
    nat::open_with_port(ctx, key, &mut forward, &mut reply)
        .map_err(|_| sender.drop(DropReason::NatPortsExhausted))?;
    deliver(ctx, sender, flow, &forward)
}

/// Back into the sending sandbox.
#[inline(always)]
fn into_sender(sender: &Sender) -> Via {
    Via::Sandbox {
        ifindex: sender.ep.host_ifindex,
        mac: sender.ep.mac,
        gateway_mac: sender.net.gateway_mac,
    }
}

/// Rewrites the packet to `entry` and sends it where the entry says.
#[inline(always)]
fn deliver(ctx: &TcContext, sender: &Sender, flow: &Flow, entry: &NatEntry) -> Verdict {
    nat::rewrite(ctx, flow, entry).map_err(|_| sender.drop(DropReason::RedirectFailed))?;
    if entry.flags & NAT_FLAG_OUT != 0 {
        return out(ctx, sender, entry.ifindex, entry.src_ip, entry.dst_ip);
    }
    route::into_sandbox(ctx, entry.ifindex, &entry.dst_mac, &entry.src_mac)
        .map(|action| sender.delivered(Delivery::Hairpin, action))
        .map_err(|reason| sender.drop(reason))
}

#[inline(always)]
fn out(ctx: &TcContext, sender: &Sender, uplink: u32, src: Ipv4Bytes, dst: Ipv4Bytes) -> Verdict {
    route::out_uplink(ctx, uplink, src, dst)
        .map(|action| sender.delivered(Delivery::Uplink, action))
        .map_err(|reason| sender.drop(reason))
}
