//! The ways a packet leaves the program other than "to the host": into a peer sandbox,
//! back into the sender's sandbox, and copies for a flood.

use aya_ebpf::helpers::generated::{bpf_redirect, bpf_redirect_peer};
use netd_common::{Delivery, DropReason};

use crate::verdict::{Sender, Verdict, REDIRECTED};

/// Straight into the sandbox behind `host_ifindex` (its ethN ingress), skipping the
/// host's backlog. Only valid at tc ingress, which is where this program runs.
#[inline(always)]
pub fn into_peer(sender: &Sender, host_ifindex: u32) -> Verdict {
    // SAFETY: plain helper call; flags 0.
    let ret = unsafe { bpf_redirect_peer(host_ifindex, 0) };
    if ret as i32 == REDIRECTED {
        Ok(sender.delivered(Delivery::Peer, REDIRECTED))
    } else {
        Err(sender.drop(DropReason::RedirectFailed))
    }
}

/// Back out of the sender's own host veth (egress), which lands in the sender's sandbox.
#[inline(always)]
pub fn back_to_sender(sender: &Sender, delivery: Delivery) -> Verdict {
    // SAFETY: plain helper call; flags 0 = egress.
    let ret = unsafe { bpf_redirect(sender.ep.host_ifindex, 0) };
    if ret as i32 == REDIRECTED {
        Ok(sender.delivered(delivery, REDIRECTED))
    } else {
        Err(sender.drop(DropReason::RedirectFailed))
    }
}
