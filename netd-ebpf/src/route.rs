//! Where translated packets go: out through an uplink, after a route lookup that needs
//! neither ip_forward nor netfilter (so Docker's FORWARD DROP policy never sees them), or
//! into a sandbox with redirect_peer.
//!
//! The lookup is an input lookup as if the packet came from `lo`: the same view of the
//! routing table as the host's own traffic gets. bpf_fib_lookup insists on forwarding
//! being enabled on the device it is given, so the daemon enables it on `lo` only, where
//! nothing from outside ever arrives to be forwarded (an output lookup would have to name
//! the uplink, and enabling forwarding there would make the host a router for it).

use core::mem::{size_of, zeroed};

use aya_ebpf::{
    bindings::{bpf_fib_lookup, bpf_redir_neigh},
    helpers::generated::{
        bpf_fib_lookup as fib_lookup, bpf_redirect, bpf_redirect_neigh, bpf_redirect_peer,
    },
    programs::TcContext,
    EbpfContext as _,
};
use netd_common::{DropReason, UplinkInfo, MAX_UPLINKS};

use crate::{maps::UPLINKS, verdict::REDIRECTED};

const AF_INET: u8 = 2;
const LOOPBACK_IFINDEX: u32 = 1;
const FIB_SUCCESS: i64 = 0;
const FIB_NO_NEIGH: i64 = 7;

/// The uplink the route to `dst` leaves through, if it leaves through one.
#[inline(always)]
pub fn uplink_for(ctx: &TcContext, src: [u8; 4], dst: [u8; 4]) -> Option<UplinkInfo> {
    let mut params = fib_params(src, dst);
    let ret = unsafe { lookup(ctx, &mut params) };
    if ret != FIB_SUCCESS && ret != FIB_NO_NEIGH {
        return None;
    }
    uplink_at(params.ifindex)
}

/// Whether interface `ifindex` is an uplink.
#[inline(always)]
pub fn is_uplink(ifindex: u32) -> bool {
    uplink_at(ifindex).is_some()
}

/// The uplink on interface `ifindex`, if it is one.
#[inline(always)]
fn uplink_at(ifindex: u32) -> Option<UplinkInfo> {
    for slot in 0..MAX_UPLINKS {
        let uplink = UPLINKS.get(slot)?;
        if uplink.ifindex == 0 {
            return None;
        }
        if uplink.ifindex == ifindex {
            return Some(*uplink);
        }
    }
    None
}

/// Sends the packet out of `uplink_ifindex` (0: any uplink) towards its (already rewritten) destination:
/// the route gives the next hop, the neighbour table its MAC (or redirect_neigh resolves it).
#[inline(always)]
pub fn out_uplink(
    ctx: &TcContext,
    uplink_ifindex: u32,
    src: [u8; 4],
    dst: [u8; 4],
) -> Result<i32, DropReason> {
    let mut params = fib_params(src, dst);
    // SAFETY: helper called with a valid stack struct of the size it is told.
    let ret = unsafe { lookup(ctx, &mut params) };
    // A flow masqueraded to one uplink's address cannot leave through another
    // (0: any uplink will do). The route must lead to an uplink either way.
    if (uplink_ifindex != 0 && params.ifindex != uplink_ifindex)
        || uplink_at(params.ifindex).is_none()
    {
        return Err(DropReason::NoRoute);
    }
    forward(ctx, ret, &params)
}

/// Sends the packet (its outer header already written) wherever the route to `dst`
/// leads: the overlay's way to another host's tunnel address, over any interface.
#[inline(always)]
pub fn out_any(ctx: &TcContext, src: [u8; 4], dst: [u8; 4]) -> Result<i32, DropReason> {
    let mut params = fib_params(src, dst);
    // SAFETY: helper called with a valid stack struct of the size it is told.
    let ret = unsafe { lookup(ctx, &mut params) };
    forward(ctx, ret, &params)
}

/// Addresses the frame to the looked-up next hop and redirects it out of its interface.
/// With tot_len 0 the lookup also checked the skb against that interface's MTU
/// (GSO-aware) and reports a frame too big as not forwardable, which drops it here.
#[inline(always)]
fn forward(ctx: &TcContext, ret: i64, params: &bpf_fib_lookup) -> Result<i32, DropReason> {
    // SAFETY: helpers called with valid stack structs of the size they are told.
    unsafe {
        match ret {
            FIB_SUCCESS => {
                // One store for both addresses (the lookup has them the other way round).
                let macs = EthAddrs {
                    dst: params.dmac,
                    src: params.smac,
                };
                ctx.store(0, &macs, 0)
                    .map_err(|_| DropReason::RedirectFailed)?;
                redirected(bpf_redirect(params.ifindex, 0))
            }
            FIB_NO_NEIGH => {
                let mut nh: bpf_redir_neigh = zeroed();
                nh.nh_family = u32::from(AF_INET);
                nh.__bindgen_anon_1.ipv4_nh = params.__bindgen_anon_4.ipv4_dst;
                redirected(bpf_redirect_neigh(
                    params.ifindex,
                    &mut nh,
                    size_of::<bpf_redir_neigh>() as i32,
                    0,
                ))
            }
            _ => Err(DropReason::NoRoute),
        }
    }
}

/// The two addresses at the start of an Ethernet header.
#[repr(C)]
pub struct EthAddrs {
    pub dst: [u8; 6],
    pub src: [u8; 6],
}

/// Into the sandbox behind host veth `ifindex`, addressed from its gateway MAC.
#[inline(always)]
pub fn into_sandbox(
    ctx: &TcContext,
    ifindex: u32,
    dst_mac: &[u8; 6],
    src_mac: &[u8; 6],
) -> Result<i32, DropReason> {
    let macs = EthAddrs {
        dst: *dst_mac,
        src: *src_mac,
    };
    ctx.store(0, &macs, 0)
        .map_err(|_| DropReason::RedirectFailed)?;
    // SAFETY: plain helper call; flags 0.
    redirected(unsafe { bpf_redirect_peer(ifindex, 0) })
}

#[inline(always)]
fn redirected(ret: i64) -> Result<i32, DropReason> {
    if ret as i32 == REDIRECTED {
        Ok(REDIRECTED)
    } else {
        Err(DropReason::RedirectFailed)
    }
}

#[inline(always)]
fn fib_params(src: [u8; 4], dst: [u8; 4]) -> bpf_fib_lookup {
    // SAFETY: an all-zero bpf_fib_lookup is valid (plain integers and unions of them).
    let mut params: bpf_fib_lookup = unsafe { zeroed() };
    params.family = AF_INET;
    params.ifindex = LOOPBACK_IFINDEX;
    params.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(src);
    params.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(dst);
    params
}

/// An input route lookup from `lo` (see the module comment).
#[inline(always)]
unsafe fn lookup(ctx: &TcContext, params: &mut bpf_fib_lookup) -> i64 {
    unsafe { fib_lookup(ctx.as_ptr(), params, size_of::<bpf_fib_lookup>() as i32, 0) }
}
