//! Frame access: the one bounds-checked pointer helper, and the header layouts the
//! program reads. Every header field the program compares is read as bytes/u32 straight
//! from the packet; nothing is byte-swapped on the fast path.

use aya_ebpf::programs::TcContext;
use network_types::{arp::ArpHdr, eth::EthHdr, ip::Ipv4Hdr};

/// Ethertypes in wire order, so they compare against `EthHdr::ether_type` as is.
pub const ETH_P_IP: u16 = 0x0800u16.to_be();
pub const ETH_P_ARP: u16 = 0x0806u16.to_be();

/// Bytes the program may read: Ethernet + ARP (the longest header pair it looks at).
const HEADERS_LEN: u32 = (EthHdr::LEN + ArpHdr::LEN) as u32;

/// Returns a pointer to a `T` at `offset` if the whole `T` lies in the linear packet data.
#[inline(always)]
pub fn ptr_at<T>(ctx: &TcContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + core::mem::size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Makes sure the headers are in the linear area. Locally generated frames always have
/// them there, so this is one comparison on the fast path; the pull is a rare fallback.
#[inline(always)]
pub fn linearize(ctx: &TcContext) {
    let linear = (ctx.data_end() - ctx.data()) as u32;
    if linear < HEADERS_LEN && ctx.len() > linear {
        let want = if ctx.len() < HEADERS_LEN {
            ctx.len()
        } else {
            HEADERS_LEN
        };
        // A failed pull leaves the frame short; the header reads then report it Malformed.
        let _ = ctx.pull_data(want);
    }
}

#[inline(always)]
pub fn ethernet(ctx: &TcContext) -> Option<&EthHdr> {
    ptr_at::<EthHdr>(ctx, 0).map(|p| unsafe { &*p })
}

#[inline(always)]
pub fn arp(ctx: &TcContext) -> Option<&ArpHdr> {
    ptr_at::<ArpHdr>(ctx, EthHdr::LEN).map(|p| unsafe { &*p })
}

#[inline(always)]
pub fn ipv4(ctx: &TcContext) -> Option<&Ipv4Hdr> {
    ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN).map(|p| unsafe { &*p })
}

/// An IPv4 address from the wire as a u32 in wire order (the map key form).
#[inline(always)]
pub fn ip_u32(addr: [u8; 4]) -> u32 {
    u32::from_ne_bytes(addr)
}

/// Group bit of the destination MAC: broadcast and multicast frames.
#[inline(always)]
pub fn is_group_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}
