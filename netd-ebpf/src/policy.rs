//! Who may reach whom: isolation between networks and `enable_icc=false`.

use netd_common::{DropReason, EndpointInfo};

use crate::verdict::{Dropped, Sender};

/// A sandbox may reach an endpoint directly only on its own network, and only when the
/// network allows inter-container traffic.
#[inline(always)]
pub fn may_reach(sender: &Sender, peer: &EndpointInfo) -> Result<(), Dropped> {
    may_reach_network(sender, peer.net_id)
}

/// The same for an endpoint of network `net_id` anywhere (e.g. on another host).
#[inline(always)]
pub fn may_reach_network(sender: &Sender, net_id: u32) -> Result<(), Dropped> {
    if net_id != sender.ep.net_id {
        return Err(sender.drop(DropReason::NetworkIsolation));
    }
    if !sender.icc() {
        return Err(sender.drop(DropReason::IccDisabled));
    }
    Ok(())
}
