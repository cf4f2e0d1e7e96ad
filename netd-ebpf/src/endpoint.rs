//! Who is sending, and is it really them: the endpoint lookup and the anti-spoofing guards.

use aya_ebpf::programs::TcContext;
use netd_common::DropReason;
use network_types::eth::EthHdr;

use crate::{
    lookup,
    maps::NETWORKS,
    verdict::{Dropped, Sender},
};

/// The endpoint behind the veth the packet arrived on. Unknown veths (mid-teardown, or a
/// stale link) count under network 0.
#[inline(always)]
pub fn sender(ctx: &TcContext) -> Result<Sender<'static>, Dropped> {
    // SAFETY: the context pointer is the kernel's __sk_buff, valid for the whole run.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let unknown = Dropped {
        net_id: 0,
        reason: DropReason::UnknownEndpoint,
    };
    let ep = lookup::by_ifindex(ifindex).ok_or(unknown)?;
    let net = NETWORKS.get(ep.net_id).ok_or(Dropped {
        net_id: 0,
        reason: DropReason::UnknownEndpoint,
    })?;
    Ok(Sender { ep, net })
}

/// A sandbox may send only from its own MAC.
#[inline(always)]
pub fn check_source_mac(sender: &Sender, eth: &EthHdr) -> Result<(), Dropped> {
    if eth.src_addr == sender.ep.mac {
        Ok(())
    } else {
        Err(sender.drop(DropReason::SpoofedMac))
    }
}
