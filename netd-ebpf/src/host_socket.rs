//! Whether a flow belongs to the host's own sockets. The host's connections are not in
//! netd's table (Docker's conntrack tracks them; netd adds no netfilter), so before a
//! packet opens a published flow, or masquerading claims a source port, the kernel's
//! socket table is asked: a host socket that would receive the flow's replies wins.

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{
    bindings::{
        bpf_sock_tuple, bpf_sock_tuple__bindgen_ty_1__bindgen_ty_1 as Ipv4Tuple,
        BPF_F_CURRENT_NETNS,
    },
    helpers::generated::{bpf_sk_lookup_tcp, bpf_sk_lookup_udp, bpf_sk_release},
    programs::TcContext,
    EbpfContext as _,
};
use netd_common::{FlowKey, IPPROTO_TCP, IPPROTO_UDP};

/// Whether a host socket would receive a packet carrying `key` (as it arrives).
#[inline(always)]
pub fn owns(ctx: &TcContext, key: &FlowKey) -> bool {
    let mut tuple = bpf_sock_tuple {
        __bindgen_anon_1: aya_ebpf::bindings::bpf_sock_tuple__bindgen_ty_1 {
            ipv4: Ipv4Tuple {
                saddr: u32::from_ne_bytes(key.src_ip),
                daddr: u32::from_ne_bytes(key.dst_ip),
                sport: key.src_port,
                dport: key.dst_port,
            },
        },
    };
    let size = size_of::<Ipv4Tuple>() as u32;
    let netns = BPF_F_CURRENT_NETNS as u64;
    // SAFETY: a stack tuple of the size given; a found socket is released right away.
    unsafe {
        let sk = match key.proto {
            IPPROTO_TCP => bpf_sk_lookup_tcp(ctx.as_ptr(), &mut tuple, size, netns, 0),
            IPPROTO_UDP => bpf_sk_lookup_udp(ctx.as_ptr(), &mut tuple, size, netns, 0),
            _ => return false,
        };
        if sk.is_null() {
            return false;
        }
        bpf_sk_release(sk as *mut c_void);
        true
    }
}
