//! Finding an endpoint: the direct-mapped array cache first (an inlined lookup), the hash
//! map only when the slot holds another endpoint or none. Both give the same answer: the
//! daemon keeps every cached copy equal to its hash entry, and changes a slot from one
//! endpoint to another only through empty, so a read racing an in-place array write never
//! mixes two endpoints (netd/src/dataplane/maps/cache.rs).

use netd_common::{ifindex_slot, ip_slot, EndpointInfo};

use crate::maps::{EP_BY_IFINDEX, EP_BY_IP, EP_IFX_CACHE, EP_IP_CACHE};

/// The endpoint whose host-side veth is `ifindex`.
#[inline(always)]
pub fn by_ifindex(ifindex: u32) -> Option<&'static EndpointInfo> {
    match EP_IFX_CACHE.get(ifindex_slot(ifindex)) {
        // An empty slot has host_ifindex 0, which no veth has.
        Some(ep) if ep.host_ifindex == ifindex && ifindex != 0 => Some(ep),
        // SAFETY: the daemon replaces hash entries whole.
        _ => unsafe { EP_BY_IFINDEX.get(ifindex) },
    }
}

/// The endpoint owning `ip` (wire-order bytes read as a native u32).
#[inline(always)]
pub fn by_ip(ip: u32) -> Option<&'static EndpointInfo> {
    match EP_IP_CACHE.get(ip_slot(ip)) {
        // An empty slot has ip 0.0.0.0 but also host_ifindex 0, which no endpoint has.
        Some(ep) if u32::from_ne_bytes(ep.ip) == ip && ep.host_ifindex != 0 => Some(ep),
        // SAFETY: the daemon replaces hash entries whole.
        _ => unsafe { EP_BY_IP.get(ip) },
    }
}
