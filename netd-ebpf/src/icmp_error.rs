//! ICMP errors from the outside about a translated flow (destination unreachable, time
//! exceeded: what path-MTU discovery and traceroute depend on). The error quotes the
//! packet as it left the host, so the quoted source is translated back along with the
//! outer destination, and the ICMP checksum follows every quoted byte that changed.
//! (The quoted L4 checksum is left as is: nobody verifies it in an error.)

use aya_ebpf::programs::TcContext;
use netd_common::{DropReason, FlowKey, IPPROTO_ICMP, NAT_FLAG_OUT};

use crate::{
    flow::L4,
    nat, route,
    uplink::inbound,
    verdict::{Dropped, Verdict},
};

/// The quoted IPv4 header, after the 8-byte ICMP header.
const INNER_L3: usize = L4 + 8;
const INNER_CHECK: usize = INNER_L3 + 10;
const INNER_SRC: usize = INNER_L3 + 12;
const INNER_L4: usize = INNER_L3 + 20;
const ICMP_CHECK: usize = L4 + 2;
const OUTER_DST: usize = L4 - 4;

/// `None` when the error is about no flow of ours (the host's own traffic): it passes.
#[inline(always)]
pub fn translate(ctx: &TcContext) -> Option<Verdict> {
    let vihl = ctx.load::<u8>(INNER_L3).ok()?;
    if vihl != 0x45 {
        return None;
    }
    let proto = ctx.load::<u8>(INNER_L3 + 9).ok()?;
    let addrs = ctx.load::<[[u8; 4]; 2]>(INNER_SRC).ok()?;
    let (port_at, quoted_port, ports) = if proto == IPPROTO_ICMP {
        // A quoted echo request: its identifier is the source "port".
        let id = ctx.load::<u16>(INNER_L4 + 4).ok()?;
        (INNER_L4 + 4, id, [id, 0])
    } else {
        let ports = ctx.load::<[u16; 2]>(INNER_L4).ok()?;
        (INNER_L4, ports[0], ports)
    };
    let quoted = FlowKey {
        src_ip: addrs[0],
        dst_ip: addrs[1],
        src_port: ports[0],
        dst_port: ports[1],
        proto,
        _pad: [0; 3],
    };
    // The quoted packet left as the flow's translation; its reply direction is ours.
    // SAFETY: the daemon and programs replace entries whole.
    let entry = *unsafe { crate::maps::NAT.get(quoted.reversed()) }?;
    if entry.flags & NAT_FLAG_OUT != 0 {
        return None;
    }
    Some(
        rewrite(
            ctx,
            &quoted,
            entry.dst_ip,
            entry.dst_port,
            port_at,
            quoted_port,
        )
        .and_then(|()| {
            route::into_sandbox(ctx, entry.ifindex, &entry.dst_mac, &entry.src_mac)
                .map(|action| inbound(0, action))
                .map_err(|reason| Dropped { net_id: 0, reason })
        }),
    )
}

#[inline(always)]
fn rewrite(
    ctx: &TcContext,
    quoted: &FlowKey,
    new_ip: [u8; 4],
    new_port: u16,
    port_at: usize,
    old_port: u16,
) -> Result<(), Dropped> {
    let failed = Dropped {
        net_id: 0,
        reason: DropReason::RedirectFailed,
    };
    let old_ip = u64::from(u32::from_ne_bytes(quoted.src_ip));
    let new_ip_v = u64::from(u32::from_ne_bytes(new_ip));
    // Outer destination: the IPv4 checksum only (ICMP has no pseudo-header).
    nat::replace_addr(ctx, OUTER_DST, quoted.src_ip, new_ip, IPPROTO_ICMP).map_err(|_| failed)?;
    // Quoted source address, its header checksum, and the ICMP checksum over both.
    let old_check = ctx.load::<u16>(INNER_CHECK).map_err(|_| failed)?;
    ctx.l3_csum_replace(INNER_CHECK, old_ip, new_ip_v, 4)
        .map_err(|_| failed)?;
    let new_check = ctx.load::<u16>(INNER_CHECK).map_err(|_| failed)?;
    ctx.store(INNER_SRC, &new_ip, 0).map_err(|_| failed)?;
    ctx.l4_csum_replace(ICMP_CHECK, old_ip, new_ip_v, 4)
        .map_err(|_| failed)?;
    ctx.l4_csum_replace(ICMP_CHECK, u64::from(old_check), u64::from(new_check), 2)
        .map_err(|_| failed)?;
    if new_port != old_port {
        ctx.store(port_at, &new_port, 0).map_err(|_| failed)?;
        ctx.l4_csum_replace(ICMP_CHECK, u64::from(old_port), u64::from(new_port), 2)
            .map_err(|_| failed)?;
    }
    Ok(())
}
