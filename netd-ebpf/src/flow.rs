//! The L4 tuple of an IPv4 packet: what the NAT table is keyed by. Only option-less
//! headers of unfragmented packets have one here; the rest is never translated.

use aya_ebpf::programs::TcContext;
use netd_common::{FlowKey, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

/// Offset of the IPv4 header.
pub const L3: usize = EthHdr::LEN;
/// Offset of the L4 header: NAT handles 20-byte IPv4 headers only.
pub const L4: usize = L3 + Ipv4Hdr::LEN;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// A packet's tuple and what else the NAT decisions need from its L4 header.
pub struct Flow {
    pub key: FlowKey,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// Where the port fields live for a rewrite: (source, destination); `None` when that
    /// side carries no port (ICMP echo has one identifier, on the side that chose it).
    pub src_port_at: Option<usize>,
    pub dst_port_at: Option<usize>,
}

impl Flow {
    /// Whether this packet may open a flow: any UDP/ICMP echo request, a TCP SYN without ACK.
    #[inline(always)]
    pub fn opens(&self) -> bool {
        match self.key.proto {
            IPPROTO_TCP => self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
            IPPROTO_ICMP => self.dst_port_at.is_none(),
            _ => true,
        }
    }

    /// A TCP FIN or RST: the flow is ending.
    #[inline(always)]
    pub fn closes(&self) -> bool {
        self.key.proto == IPPROTO_TCP && self.tcp_flags & (TCP_FIN | TCP_RST) != 0
    }
}

/// What the L4 header of an IPv4 packet is, for NAT.
pub enum L4Kind {
    /// TCP, UDP, SCTP or ICMP echo: a flow.
    Flow(Flow),
    /// An ICMP error (destination unreachable, time exceeded) quoting a packet of a flow.
    IcmpError,
    /// Nothing NAT can translate (fragments, IP options, other protocols or ICMP types).
    Other,
}

#[inline(always)]
pub fn classify(ctx: &TcContext, ip: &Ipv4Hdr) -> L4Kind {
    // More-fragments flag or a fragment offset: no L4 header to key on.
    if ip.vihl != 0x45 || (ip.frags[0] & 0x3f) != 0 || ip.frags[1] != 0 {
        return L4Kind::Other;
    }
    let mut key = FlowKey {
        src_ip: ip.src_addr,
        dst_ip: ip.dst_addr,
        src_port: 0,
        dst_port: 0,
        proto: ip.proto,
        _pad: [0; 3],
    };
    match ip.proto {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
            let Ok(ports) = ctx.load::<[u16; 2]>(L4) else {
                return L4Kind::Other;
            };
            key.src_port = ports[0];
            key.dst_port = ports[1];
            let tcp_flags = if ip.proto == IPPROTO_TCP {
                ctx.load::<u8>(L4 + 13).unwrap_or(0)
            } else {
                0
            };
            L4Kind::Flow(Flow {
                key,
                tcp_flags,
                src_port_at: Some(L4),
                dst_port_at: Some(L4 + 2),
            })
        }
        IPPROTO_ICMP => {
            let Ok(icmp_type) = ctx.load::<u8>(L4) else {
                return L4Kind::Other;
            };
            let Ok(id) = ctx.load::<u16>(L4 + 4) else {
                return L4Kind::Other;
            };
            match icmp_type {
                ICMP_ECHO_REQUEST => {
                    key.src_port = id;
                    L4Kind::Flow(Flow {
                        key,
                        tcp_flags: 0,
                        src_port_at: Some(L4 + 4),
                        dst_port_at: None,
                    })
                }
                ICMP_ECHO_REPLY => {
                    key.dst_port = id;
                    L4Kind::Flow(Flow {
                        key,
                        tcp_flags: 0,
                        src_port_at: None,
                        dst_port_at: Some(L4 + 4),
                    })
                }
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED => L4Kind::IcmpError,
                _ => L4Kind::Other,
            }
        }
        _ => L4Kind::Other,
    }
}

/// Offset of the L4 checksum, and whether it covers the IP pseudo-header.
#[inline(always)]
pub fn l4_checksum(proto: u8) -> Option<(usize, bool)> {
    match proto {
        IPPROTO_TCP => Some((L4 + 16, true)),
        IPPROTO_UDP => Some((L4 + 6, true)),
        IPPROTO_ICMP => Some((L4 + 2, false)),
        // SCTP's CRC32c covers no IP address, and netd only publishes SCTP on equal ports.
        _ => None,
    }
}
