//! The flow table: a flow's translation, opening a new one, and rewriting a packet to it.
//!
//! Every translated flow has two entries: one keyed by the opening direction's tuple, one
//! (its twin) keyed by the reverse of that entry's rewritten tuple, i.e. by what replies
//! carry. The twin is claimed first with BPF_NOEXIST, so two flows can never be rewritten
//! onto the same tuple.

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_F_MARK_MANGLED_0, BPF_F_PSEUDO_HDR, BPF_NOEXIST},
    helpers::{bpf_get_prandom_u32, bpf_ktime_get_ns},
    programs::TcContext,
};
use netd_common::{
    FlowKey, Ipv4Bytes, MacBytes, NatCounter, NatEntry, NatKind, PublishTarget, IPPROTO_UDP,
    NAT_FLAG_CLOSING, NAT_FLAG_ORIGINAL, NAT_FLAG_OUT,
};

use crate::{
    flow::{l4_checksum, Flow, Fragment, L3, NO_PORT},
    host_socket,
    maps::{FRAGMENTS, NAT, NAT_CONFIG, NAT_STATS},
};

/// How stale `last_seen_ns` may get before a packet refreshes it: one write a second per
/// flow instead of one per packet.
const REFRESH_NS: u64 = 1_000_000_000;
/// Source ports tried for a new masqueraded flow before giving up.
const PORT_ATTEMPTS: u32 = 8;
/// Offsets of the IPv4 checksum and addresses.
const IP_CHECK: usize = L3 + 10;
const IP_SRC: usize = L3 + 12;
const IP_DST: usize = L3 + 16;

/// Where a flow's packets go once rewritten.
pub enum Via {
    /// Out through this uplink (0: whichever uplink the route picks).
    Uplink(u32),
    /// Into the sandbox behind host veth `ifindex`, addressed from its gateway's MAC.
    Sandbox {
        ifindex: u32,
        mac: MacBytes,
        gateway_mac: MacBytes,
    },
}

impl Via {
    /// Into a published port's backend.
    #[inline(always)]
    pub fn backend(target: &PublishTarget) -> Via {
        Via::Sandbox {
            ifindex: target.ifindex,
            mac: target.mac,
            gateway_mac: target.gateway_mac,
        }
    }
}

/// An entry rewriting packets to `src` -> `dst` (address, wire-order port), sent `via`.
#[inline(always)]
pub fn entry(kind: NatKind, src: (Ipv4Bytes, u16), dst: (Ipv4Bytes, u16), via: Via) -> NatEntry {
    let (ifindex, dst_mac, src_mac, flags) = match via {
        Via::Uplink(ifindex) => (ifindex, [0; 6], [0; 6], NAT_FLAG_OUT),
        Via::Sandbox {
            ifindex,
            mac,
            gateway_mac,
        } => (ifindex, mac, gateway_mac, 0),
    };
    NatEntry {
        src_ip: src.0,
        dst_ip: dst.0,
        src_port: src.1,
        dst_port: dst.1,
        ifindex,
        dst_mac,
        src_mac,
        kind: kind as u8,
        flags,
        _pad: [0; 2],
        last_seen_ns: 0,
    }
}

/// The entry for the replies of a packet carrying `key`: back to its own source.
#[inline(always)]
pub fn reply_to(key: &FlowKey, kind: NatKind, via: Via) -> NatEntry {
    entry(
        kind,
        (key.dst_ip, key.dst_port),
        (key.src_ip, key.src_port),
        via,
    )
}

/// The translation of this packet's flow, if it has one. Refreshes the entry's and its
/// twin's age (and marks both closing on a FIN/RST), at most once a second.
#[inline(always)]
pub fn lookup(flow: &Flow) -> Option<NatEntry> {
    let entry = NAT.get_ptr_mut(flow.key)?;
    // SAFETY: a map value pointer, valid for this run; racing writers only store whole
    // u64/u8 fields that the daemon reads as hints.
    unsafe {
        let now = bpf_ktime_get_ns();
        let closing = flow.closes() && (*entry).flags & NAT_FLAG_CLOSING == 0;
        if now.wrapping_sub((*entry).last_seen_ns) > REFRESH_NS || closing {
            (*entry).last_seen_ns = now;
            let twin_key = (*entry).translated(flow.key.proto).reversed();
            let twin = NAT.get_ptr_mut(twin_key);
            if let Some(twin) = twin {
                (*twin).last_seen_ns = now;
            }
            if flow.closes() {
                (*entry).flags |= NAT_FLAG_CLOSING;
                if let Some(twin) = twin {
                    (*twin).flags |= NAT_FLAG_CLOSING;
                }
            }
        }
        Some(*entry)
    }
}

/// Opens a flow: claims `reply` under the reverse of `forward`'s rewrite, then stores
/// `forward` under the packet's key. Fails if the rewritten tuple is taken.
#[inline(always)]
pub fn open(key: &FlowKey, forward: &mut NatEntry, reply: &mut NatEntry) -> Result<(), ()> {
    let now = unsafe { bpf_ktime_get_ns() };
    forward.last_seen_ns = now;
    forward.flags |= NAT_FLAG_ORIGINAL;
    reply.last_seen_ns = now;
    let reply_key = forward.translated(key.proto).reversed();
    NAT.insert(reply_key, reply, u64::from(BPF_NOEXIST))
        .map_err(|_| ())?;
    if NAT.insert(key, forward, u64::from(BPF_ANY)).is_err() {
        let _ = NAT.remove(reply_key);
        return Err(());
    }
    count(NatCounter::EntriesCreated, 2);
    Ok(())
}

/// Opens a flow whose new source port is still to be chosen (masquerade, hairpin): the
/// packet's own port if it lies in the configured range, then random ones in it.
#[inline(always)]
pub fn open_with_port(
    ctx: &TcContext,
    key: &FlowKey,
    forward: &mut NatEntry,
    reply: &mut NatEntry,
) -> Result<(), ()> {
    let (min, max) = match NAT_CONFIG.get(0) {
        Some(c) if c.port_min != 0 && c.port_max >= c.port_min => (c.port_min, c.port_max),
        _ => (61000, 65535),
    };
    let span = u32::from(max - min) + 1;
    let own = u16::from_be(key.src_port);
    let mut seed = if (min..=max).contains(&own) {
        u32::from(own - min)
    } else {
        unsafe { bpf_get_prandom_u32() }
    };
    for _ in 0..PORT_ATTEMPTS {
        let port = (min + (seed % span) as u16).to_be();
        forward.src_port = port;
        reply.dst_port = key.src_port;
        // A port the host's own connection to the same peer uses is not ours to take.
        let taken_by_host = host_socket::owns(ctx, &forward.translated(key.proto).reversed());
        if !taken_by_host && open(key, forward, reply).is_ok() {
            return Ok(());
        }
        seed = unsafe { bpf_get_prandom_u32() };
    }
    count(NatCounter::PortsExhausted, 1);
    Err(())
}

/// Rewrites the packet's addresses and ports to `to`'s, fixing the IPv4 and L4 checksums
/// incrementally (CHECKSUM_PARTIAL packets included: the helpers handle them).
#[inline(always)]
pub fn rewrite(ctx: &TcContext, flow: &Flow, to: &NatEntry) -> Result<(), ()> {
    let from = &flow.key;
    if flow.fragment == Fragment::First {
        // The datagram's later fragments look their flow up by the untranslated header.
        FRAGMENTS.insert(flow.datagram, from, 0).map_err(|_| ())?;
    }
    let proto = flow.checksummed_proto();
    if to.src_ip != from.src_ip {
        replace_addr(ctx, IP_SRC, from.src_ip, to.src_ip, proto)?;
    }
    if to.dst_ip != from.dst_ip {
        replace_addr(ctx, IP_DST, from.dst_ip, to.dst_ip, proto)?;
    }
    if flow.src_port_at != NO_PORT && to.src_port != from.src_port {
        replace_port(
            ctx,
            flow.src_port_at,
            from.src_port,
            to.src_port,
            from.proto,
        )?;
    }
    if flow.dst_port_at != NO_PORT && to.dst_port != from.dst_port {
        replace_port(
            ctx,
            flow.dst_port_at,
            from.dst_port,
            to.dst_port,
            from.proto,
        )?;
    }
    Ok(())
}

/// UDP's checksum 0 means "none" and must stay so.
#[inline(always)]
fn mangled_zero(proto: u8) -> u64 {
    if proto == IPPROTO_UDP {
        u64::from(BPF_F_MARK_MANGLED_0)
    } else {
        0
    }
}

#[inline(always)]
pub fn replace_addr(
    ctx: &TcContext,
    at: usize,
    old: [u8; 4],
    new: [u8; 4],
    proto: u8,
) -> Result<(), ()> {
    let (old_v, new_v) = (
        u64::from(u32::from_ne_bytes(old)),
        u64::from(u32::from_ne_bytes(new)),
    );
    if let Some((csum_at, true)) = l4_checksum(proto) {
        let flags = u64::from(BPF_F_PSEUDO_HDR) | 4 | mangled_zero(proto);
        ctx.l4_csum_replace(csum_at, old_v, new_v, flags)
            .map_err(|_| ())?;
    }
    ctx.l3_csum_replace(IP_CHECK, old_v, new_v, 4)
        .map_err(|_| ())?;
    ctx.store(at, &new, 0).map_err(|_| ())
}

#[inline(always)]
pub fn replace_port(ctx: &TcContext, at: usize, old: u16, new: u16, proto: u8) -> Result<(), ()> {
    if let Some((csum_at, _)) = l4_checksum(proto) {
        let flags = 2 | mangled_zero(proto);
        ctx.l4_csum_replace(csum_at, u64::from(old), u64::from(new), flags)
            .map_err(|_| ())?;
    }
    ctx.store(at, &new, 0).map_err(|_| ())
}

#[inline(always)]
pub fn count(counter: NatCounter, n: u64) {
    if let Some(slot) = NAT_STATS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot.
        unsafe { *slot += n };
    }
}
