//! ARP: answer for the gateway and for overlay endpoints on other hosts ourselves (no
//! broadcast crosses hosts), hand requests for a local peer to that peer, and let replies
//! reach the peer (or the host) they are addressed to.

use aya_ebpf::programs::TcContext;
use netd_common::{Delivery, DropReason};
use network_types::{arp::ArpHdr, eth::EthHdr};

use crate::{
    encap, lookup,
    packet::{self, ip_u32, ETH_P_ARP},
    policy, redirect,
    verdict::{Sender, Verdict},
};

const HTYPE_ETHERNET: [u8; 2] = [0, 1];
const PTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const OP_REQUEST: [u8; 2] = [0, 1];
const OP_REPLY: [u8; 2] = [0, 2];

/// An Ethernet + ARP frame as written back for a reply we make ourselves.
#[repr(C)]
struct ArpFrame {
    eth: EthHdr,
    arp: ArpHdr,
}

const _: () = assert!(core::mem::size_of::<ArpFrame>() == EthHdr::LEN + ArpHdr::LEN);

#[inline(always)]
pub fn handle(ctx: &TcContext, sender: &Sender) -> Verdict {
    let arp = packet::arp(ctx).ok_or(sender.drop(DropReason::Malformed))?;
    if arp.htype != HTYPE_ETHERNET || arp.ptype != PTYPE_IPV4 || arp.hlen != 6 || arp.plen != 4 {
        return Err(sender.drop(DropReason::UnsupportedProtocol));
    }
    check_sender(sender, arp)?;
    let target = ip_u32(arp.tpa);
    if arp.oper == OP_REQUEST {
        request(ctx, sender, arp, target)
    } else if arp.oper == OP_REPLY {
        reply(sender, target)
    } else {
        Err(sender.drop(DropReason::UnsupportedProtocol))
    }
}

/// The ARP sender fields must be the endpoint's own; 0.0.0.0 is allowed for probes (RFC 5227).
#[inline(always)]
fn check_sender(sender: &Sender, arp: &ArpHdr) -> Result<(), crate::verdict::Dropped> {
    let spa = ip_u32(arp.spa);
    if arp.sha != sender.ep.mac || (spa != ip_u32(sender.ep.ip) && spa != 0) {
        return Err(sender.drop(DropReason::SpoofedIp));
    }
    Ok(())
}

#[inline(always)]
fn request(ctx: &TcContext, sender: &Sender, arp: &ArpHdr, target: u32) -> Verdict {
    if target == ip_u32(sender.net.gateway_ip) {
        return answer(ctx, sender, arp, sender.net.gateway_mac);
    }
    if target == ip_u32(sender.ep.ip) {
        // Gratuitous ARP or a duplicate-address probe for itself: nobody else may answer.
        return sender.to_host();
    }
    if let Some(peer) = lookup::by_ip(target) {
        policy::may_reach(sender, peer)?;
        return redirect::into_peer(sender, peer.host_ifindex);
    }
    let remote = encap::remote(target).ok_or(sender.drop(DropReason::UnknownDestination))?;
    policy::may_reach_network(sender, remote.net_id)?;
    answer(ctx, sender, arp, remote.mac)
}

/// Replies go to the same-network endpoint they target; anything else (e.g. the host
/// asked) is the host's.
#[inline(always)]
fn reply(sender: &Sender, target: u32) -> Verdict {
    match lookup::by_ip(target) {
        Some(peer)
            if peer.net_id == sender.ep.net_id && peer.host_ifindex != sender.ep.host_ifindex =>
        {
            policy::may_reach(sender, peer)?;
            redirect::into_peer(sender, peer.host_ifindex)
        }
        _ => sender.to_host(),
    }
}

/// Rewrites the request into the reply "`request.tpa` is at `mac`" and sends it back into
/// the sender's sandbox.
#[inline(always)]
fn answer(ctx: &TcContext, sender: &Sender, request: &ArpHdr, mac: [u8; 6]) -> Verdict {
    let frame = ArpFrame {
        eth: EthHdr {
            dst_addr: request.sha,
            src_addr: mac,
            ether_type: ETH_P_ARP,
        },
        arp: ArpHdr {
            htype: HTYPE_ETHERNET,
            ptype: PTYPE_IPV4,
            hlen: 6,
            plen: 4,
            oper: OP_REPLY,
            sha: mac,
            spa: request.tpa,
            tha: request.sha,
            tpa: request.spa,
        },
    };
    // One store of the whole header: no direct packet writes, so the verifier adds no
    // "make writable" prologue to every run of the program.
    ctx.store(0, &frame, 0)
        .map_err(|_| sender.drop(DropReason::RedirectFailed))?;
    redirect::back_to_sender(sender, Delivery::ArpReply)
}
