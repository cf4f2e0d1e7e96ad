//! Published ports and the host's own addresses, as every NAT path looks them up.

use netd_common::{FlowKey, PublishKey, PublishTarget};

use crate::{
    maps::{HOST_ADDRS, PUBLISHED},
    packet::ip_u32,
};

/// The backend of the port this packet (or socket) is addressed to: a publishing on
/// exactly its destination address first, then one on 0.0.0.0.
#[inline(always)]
pub fn target(key: &FlowKey) -> Option<PublishTarget> {
    let mut published = PublishKey {
        host_ip: key.dst_ip,
        port: key.dst_port,
        proto: key.proto,
        _pad: 0,
    };
    // SAFETY: the daemon replaces entries whole.
    if let Some(target) = unsafe { PUBLISHED.get(published) } {
        return Some(*target);
    }
    published.host_ip = [0; 4];
    unsafe { PUBLISHED.get(published) }.copied()
}

/// One of the host's addresses (never a loopback one: those are published to the host's
/// own sockets only, through the socket hooks).
#[inline(always)]
pub fn is_host_address(ip: [u8; 4]) -> bool {
    ip[0] != 127 && unsafe { HOST_ADDRS.get(ip_u32(ip)) }.is_some()
}
