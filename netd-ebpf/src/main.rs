//! netd's kernel side. `from_sandbox` runs at tc ingress of every endpoint's host-side
//! veth, i.e. on every packet a sandbox sends, and replaces the Linux bridge + iptables:
//!
//! sender lookup -> source MAC guard -> per-ethertype step (ARP or IPv4) -> one counter.
//!
//! `to_sandbox` at tc egress of the same veth keeps what the host forwards from foreign
//! interfaces out; `from_uplink` translates at the uplinks and decapsulates the overlay's
//! VXLAN; the cgroup hooks publish ports to the host's own sockets.
//!
//! No aya-log: the per-packet path never logs; the STATS counters are the observability.
#![no_std]
#![no_main]

mod arp;
mod decap;
mod egress;
mod encap;
mod endpoint;
mod flood;
mod flow;
mod forwarded;
mod host_socket;
mod icmp_error;
mod ipv4;
mod lookup;
mod maps;
mod nat;
mod packet;
mod policy;
mod publish;
mod redirect;
mod route;
mod sock;
mod stats;
mod uplink;
mod verdict;
mod vxlan;

use aya_ebpf::{
    bindings::TC_ACT_SHOT,
    macros::{cgroup_sock_addr, classifier},
    programs::{SockAddrContext, TcContext},
};
use netd_common::{delivery_slot, drop_slot, DropReason};

use crate::{
    packet::{ETH_P_ARP, ETH_P_IP},
    verdict::Verdict,
};

#[classifier]
pub fn from_sandbox(ctx: TcContext) -> i32 {
    counted(&ctx, try_from_sandbox(&ctx))
}

#[classifier]
pub fn to_sandbox(ctx: TcContext) -> i32 {
    match forwarded::guard(&ctx) {
        Ok(action) => action,
        Err(dropped) => {
            stats::count(&ctx, drop_slot(dropped.net_id, dropped.reason));
            TC_ACT_SHOT
        }
    }
}

#[classifier]
pub fn from_uplink(ctx: TcContext) -> i32 {
    counted(&ctx, uplink::handle(&ctx))
}

#[cgroup_sock_addr(connect4)]
pub fn connect4(ctx: SockAddrContext) -> i32 {
    sock::to_backend(&ctx);
    1
}

#[cgroup_sock_addr(sendmsg4)]
pub fn sendmsg4(ctx: SockAddrContext) -> i32 {
    sock::to_backend(&ctx);
    1
}

#[cgroup_sock_addr(recvmsg4)]
pub fn recvmsg4(ctx: SockAddrContext) -> i32 {
    sock::from_backend(&ctx);
    1
}

#[cgroup_sock_addr(getpeername4)]
pub fn getpeername4(ctx: SockAddrContext) -> i32 {
    sock::from_backend(&ctx);
    1
}

/// One counter per packet, then the tc action.
#[inline(always)]
fn counted(ctx: &TcContext, verdict: Verdict) -> i32 {
    match verdict {
        Ok(done) => {
            stats::count(ctx, delivery_slot(done.net_id, done.delivery));
            done.action
        }
        Err(dropped) => {
            stats::count(ctx, drop_slot(dropped.net_id, dropped.reason));
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_from_sandbox(ctx: &TcContext) -> Verdict {
    let sender = endpoint::sender(ctx)?;
    packet::linearize(ctx);
    let eth = packet::ethernet(ctx).ok_or(sender.drop(DropReason::Malformed))?;
    endpoint::check_source_mac(&sender, eth)?;
    match eth.ether_type {
        ETH_P_IP => ipv4::handle(ctx, &sender, eth),
        ETH_P_ARP => arp::handle(ctx, &sender),
        _ => Err(sender.drop(DropReason::UnsupportedProtocol)),
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
