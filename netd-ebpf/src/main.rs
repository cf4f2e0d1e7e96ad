//! netd's kernel side. `from_sandbox` runs at tc ingress of every endpoint's host-side
//! veth, i.e. on every packet a sandbox sends, and replaces the Linux bridge + iptables:
//!
//! sender lookup -> source MAC guard -> per-ethertype step (ARP or IPv4) -> one counter.
//!
//! No aya-log: the per-packet path never logs; the STATS counters are the observability.
#![no_std]
#![no_main]

mod arp;
mod endpoint;
mod flood;
mod ipv4;
mod lookup;
mod maps;
mod packet;
mod policy;
mod redirect;
mod stats;
mod verdict;

use aya_ebpf::{bindings::TC_ACT_SHOT, macros::classifier, programs::TcContext};
use netd_common::{delivery_slot, drop_slot, DropReason};

use crate::{
    packet::{ETH_P_ARP, ETH_P_IP},
    verdict::Verdict,
};

#[classifier]
pub fn from_sandbox(ctx: TcContext) -> i32 {
    match try_from_sandbox(&ctx) {
        Ok(done) => {
            stats::count(&ctx, delivery_slot(done.net_id, done.delivery));
            done.action
        }
        Err(dropped) => {
            stats::count(&ctx, drop_slot(dropped.net_id, dropped.reason));
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
