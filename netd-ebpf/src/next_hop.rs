//! The encapsulation's next hop towards a remote tunnel address, cached per CPU.
//!
//! Why: bpf_fib_lookup was ~280 ns of a ~600 ns encapsulation, and every packet to a host
//! asked it the same question. A hit costs an inlined per-CPU array load and a coarse
//! clock read. Entries live [`LIFETIME_NS`], so route and neighbour changes reach the
//! dataplane within a second with nothing for the daemon to flush; a miss or an expired
//! entry takes exactly the old path (lookup, then MACs + redirect, or redirect_neigh when
//! the neighbour is unresolved, which is not remembered, so resolution is retried).
//!
//! Per-CPU and direct-mapped (one slot per hash of the address, no chaining): no locks, no
//! races between CPUs, and the lookup is inlined by the verifier. Tunnel addresses that
//! collide only cost each other lookups.

use aya_ebpf::{
    bindings::bpf_fib_lookup, helpers::generated::bpf_ktime_get_coarse_ns,
    helpers::generated::bpf_redirect, programs::TcContext,
};
use netd_common::{next_hop_slot, DropReason, NextHop};
use network_types::eth::EthHdr;

use crate::{
    maps::NEXT_HOPS,
    packet::{ip_u32, ETH_P_IP},
    route::{self, EthAddrs, FIB_SUCCESS},
    vxlan::Tunnel,
};

/// How long a lookup's answer is reused.
const LIFETIME_NS: u64 = 1_000_000_000;
/// What `is_skb_forwardable` allows beyond the MTU: the Ethernet header and a VLAN tag.
const LINK_OVERHEAD: u32 = EthHdr::LEN as u32 + 4;

/// The outer frame from its first byte: next hop addresses, type, inserted headers.
#[repr(C)]
struct Framed {
    macs: EthAddrs,
    ether_type: u16,
    tunnel: Tunnel,
}

/// The cached next hop to `vtep`, if fresh and if the lookup would have passed a frame
/// of `frame_len` bytes (the length after encapsulation) through its MTU check: frames
/// longer than the interface takes (and not GSO super-packets, which the check lets
/// through) go back to the lookup, which refuses them.
#[inline(always)]
pub fn cached(ctx: &TcContext, vtep: [u8; 4], frame_len: u32) -> Option<NextHop> {
    let key = ip_u32(vtep);
    let hop = NEXT_HOPS.get(next_hop_slot(key))?;
    if hop.vtep != vtep {
        return None;
    }
    // SAFETY: plain helper call.
    if unsafe { bpf_ktime_get_coarse_ns() } >= hop.expires_ns {
        return None;
    }
    // SAFETY: reading a field of the context the program was handed.
    if frame_len > hop.max_len && unsafe { (*ctx.skb.skb).gso_size } == 0 {
        return None;
    }
    Some(*hop)
}

/// Writes the outer headers from the first byte (one store) and sends the frame to `hop`.
#[inline(always)]
pub fn send_cached(ctx: &TcContext, hop: &NextHop, tunnel: Tunnel) -> Result<i32, DropReason> {
    let frame = Framed {
        macs: EthAddrs {
            dst: hop.dmac,
            src: hop.smac,
        },
        ether_type: ETH_P_IP,
        tunnel,
    };
    ctx.store(0, &frame, 0)
        .map_err(|_| DropReason::RedirectFailed)?;
    // SAFETY: plain helper call; flags 0.
    route::redirected(unsafe { bpf_redirect(hop.ifindex, 0) })
}

/// Sends the frame (outer headers after the Ethernet one already written) wherever the
/// route from `src` to `vtep` leads, over any interface, and remembers a resolved answer.
#[inline(always)]
pub fn send_looked_up(ctx: &TcContext, src: [u8; 4], vtep: [u8; 4]) -> Result<i32, DropReason> {
    let (ret, params) = route::lookup_any(ctx, src, vtep);
    if ret == FIB_SUCCESS {
        remember(vtep, &params);
    }
    route::forward(ctx, ret, &params)
}

#[inline(always)]
fn remember(vtep: [u8; 4], params: &bpf_fib_lookup) {
    let Some(slot) = NEXT_HOPS.get_ptr_mut(next_hop_slot(ip_u32(vtep))) else {
        return;
    };
    // SAFETY: this CPU's slot (nothing else runs on it meanwhile); the union member is
    // the one a successful lookup without tot_len fills in.
    unsafe {
        *slot = NextHop {
            vtep,
            ifindex: params.ifindex,
            dmac: params.dmac,
            smac: params.smac,
            max_len: u32::from(params.__bindgen_anon_1.mtu_result) + LINK_OVERHEAD,
            expires_ns: bpf_ktime_get_coarse_ns() + LIFETIME_NS,
        };
    }
}
