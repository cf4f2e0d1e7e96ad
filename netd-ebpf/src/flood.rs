//! Broadcast and multicast: a copy to every other member of the sender's network, and the
//! original to the host.

use aya_ebpf::{bindings::TC_ACT_OK, programs::TcContext};
use netd_common::{Delivery, MemberKey, MAX_FLOOD_MEMBERS};

use crate::{
    maps::MEMBERS,
    verdict::{Sender, Verdict},
};

/// Copies the frame to the egress of every other member's host veth (which lands in that
/// sandbox), then passes the original to the host. With icc off only the host sees it.
/// A member whose copy fails (its veth is going away) is skipped: the others still get theirs.
#[inline(always)]
pub fn flood(ctx: &TcContext, sender: &Sender) -> Verdict {
    if !sender.icc() {
        return sender.to_host();
    }
    let count = sender.net.member_count;
    let mut slot = 0;
    while slot < MAX_FLOOD_MEMBERS && slot < count {
        let key = MemberKey {
            net_id: sender.ep.net_id,
            slot,
        };
        // SAFETY: u32 values, replaced whole by the daemon.
        if let Some(&ifindex) = unsafe { MEMBERS.get(key) } {
            if ifindex != sender.ep.host_ifindex {
                // Packet pointers are invalid after this call; nothing below reads the packet.
                let _ = ctx.clone_redirect(ifindex, 0);
            }
        }
        slot += 1;
    }
    Ok(sender.delivered(Delivery::Flood, TC_ACT_OK))
}
