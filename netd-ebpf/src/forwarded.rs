//! What the host's stack sends into a sandbox (tc egress of its host veth). netd's own
//! deliveries never pass here: bpf_redirect_peer enters the sandbox directly. The host's
//! own packets go on, and so does what a netd sandbox or an uplink handed to the stack
//! (their programs already judged it). A packet the host forwards from any other
//! interface (docker0, another runtime's bridge) is dropped: netd's routes to its
//! sandboxes must not let foreign networks in, as Docker's DOCKER-ISOLATION chains keep
//! its bridges apart.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use netd_common::DropReason;

use crate::{lookup, route, verdict::Dropped};

#[inline(always)]
pub fn guard(ctx: &TcContext) -> Result<i32, Dropped> {
    // SAFETY: the context pointer is the kernel's __sk_buff, valid for the whole run.
    let (from, to) = unsafe { ((*ctx.skb.skb).ingress_ifindex, (*ctx.skb.skb).ifindex) };
    // 0: the host's own packet.
    if from == 0 || lookup::by_ifindex(from).is_some() || route::is_uplink(from) {
        return Ok(TC_ACT_OK);
    }
    Err(Dropped {
        net_id: lookup::by_ifindex(to).map_or(0, |ep| ep.net_id),
        reason: DropReason::ForeignInterface,
    })
}
