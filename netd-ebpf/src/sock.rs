//! The host's own sockets reaching published ports: connect4/sendmsg4 point the socket at
//! the backend before any packet exists (no proxy process, no per-packet NAT, no
//! route_localnet), and recvmsg4/getpeername4 show the application the address it asked
//! for. Attached to a cgroup that may hold every process of the machine, so each hook
//! acts only on sockets of the daemon's own network namespace.

use aya_ebpf::{
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    programs::SockAddrContext,
    EbpfContext as _,
};
use netd_common::{FlowKey, NatCounter, SockKey, SockOrigin};

use crate::{
    maps::{NAT_CONFIG, SOCK_NAT},
    nat, publish,
};

/// connect4 and sendmsg4: a published port on a loopback or host address leads to its
/// backend.
#[inline(always)]
pub fn to_backend(ctx: &SockAddrContext) {
    if !in_host_netns(ctx) {
        return;
    }
    let sa = ctx.sock_addr;
    // SAFETY: the kernel's bpf_sock_addr; these fields are readable and writable here.
    let (ip, port, proto) = unsafe { ((*sa).user_ip4, (*sa).user_port, (*sa).protocol) };
    let dst = ip.to_ne_bytes();
    if dst[0] != 127 && !publish::is_host_address(dst) {
        return;
    }
    let key = FlowKey {
        src_ip: [0; 4],
        dst_ip: dst,
        src_port: 0,
        dst_port: port as u16,
        proto: proto as u8,
        _pad: [0; 3],
    };
    let Some(target) = publish::target(&key) else {
        return;
    };
    let sock = SockKey {
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        backend_ip: target.ip,
        backend_port: target.port,
        _pad: 0,
    };
    let origin = SockOrigin {
        ip: dst,
        port: port as u16,
        _pad: 0,
    };
    // Without the origin recorded, getpeername would expose the backend: keep the
    // socket as it was rather than half-translated.
    if SOCK_NAT.insert(sock, origin, 0).is_err() {
        return;
    }
    unsafe {
        (*sa).user_ip4 = u32::from_ne_bytes(target.ip);
        (*sa).user_port = u32::from(target.port);
    }
    nat::count(NatCounter::SocketsRewritten, 1);
}

/// recvmsg4 and getpeername4: the backend's address reads as the one connected to.
#[inline(always)]
pub fn from_backend(ctx: &SockAddrContext) {
    if !in_host_netns(ctx) {
        return;
    }
    let sa = ctx.sock_addr;
    let (ip, port) = unsafe { ((*sa).user_ip4, (*sa).user_port) };
    let sock = SockKey {
        cookie: unsafe { bpf_get_socket_cookie(ctx.as_ptr()) },
        backend_ip: ip.to_ne_bytes(),
        backend_port: port as u16,
        _pad: 0,
    };
    // SAFETY: entries are written whole.
    if let Some(origin) = unsafe { SOCK_NAT.get(sock) } {
        unsafe {
            (*sa).user_ip4 = u32::from_ne_bytes(origin.ip);
            (*sa).user_port = u32::from(origin.port);
        }
    }
}

#[inline(always)]
fn in_host_netns(ctx: &SockAddrContext) -> bool {
    let Some(config) = NAT_CONFIG.get(0) else {
        return false;
    };
    config.host_netns_cookie != 0
        && unsafe { bpf_get_netns_cookie(ctx.as_ptr()) } == config.host_netns_cookie
}
