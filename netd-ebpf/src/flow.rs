//! The L4 tuple of an IPv4 packet: what the NAT table is keyed by. Only option-less
//! headers have one here. A datagram in fragments has its tuple in the first fragment;
//! the later ones find it in FRAGMENTS, where translating the first one put it.

use aya_ebpf::programs::TcContext;
use netd_common::{FlowKey, FragmentKey, IPPROTO_ICMP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::maps::FRAGMENTS;

/// Offset of the IPv4 header.
pub const L3: usize = EthHdr::LEN;
/// Offset of the L4 header: NAT handles 20-byte IPv4 headers only.
pub const L4: usize = L3 + Ipv4Hdr::LEN;
/// A port offset meaning "no port here" (no L4 field sits at offset 0).
pub const NO_PORT: usize = 0;

pub const ICMP_ECHO_REPLY: u8 = 0;
pub const ICMP_DEST_UNREACH: u8 = 3;
pub const ICMP_ECHO_REQUEST: u8 = 8;
pub const ICMP_TIME_EXCEEDED: u8 = 11;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_ACK: u8 = 0x10;

/// Where a packet stands in its datagram. (No payload in the variants: the verifier refuses
/// copies of a partly written enum.)
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fragment {
    /// Not fragmented.
    Whole,
    /// The first fragment: it has the L4 header, the rest of the datagram follows.
    First,
    /// A later fragment: no L4 header, only payload.
    Later,
}

/// A packet's tuple and what else the NAT decisions need from its L4 header.
pub struct Flow {
    pub key: FlowKey,
    pub fragment: Fragment,
    /// The datagram the packet belongs to, as its header names it.
    pub datagram: FragmentKey,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// Where the port fields live for a rewrite: (source, destination); [`NO_PORT`] when
    /// that side carries no port (ICMP echo has one identifier, on the side that chose it;
    /// a later fragment has none). Plain offsets, not `Option`s: the verifier refuses to
    /// copy the undefined payload of a `None`.
    pub src_port_at: usize,
    pub dst_port_at: usize,
}

impl Flow {
    /// Whether this packet may open a flow: any UDP/ICMP echo request, a TCP SYN without ACK;
    /// never a later fragment (its datagram's first fragment decided).
    #[inline(always)]
    pub fn opens(&self) -> bool {
        if self.fragment == Fragment::Later {
            return false;
        }
        match self.key.proto {
            IPPROTO_TCP => self.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN,
            IPPROTO_ICMP => self.dst_port_at == NO_PORT,
            _ => true,
        }
    }

    /// The protocol whose checksum the packet carries: none in a later fragment.
    #[inline(always)]
    pub fn checksummed_proto(&self) -> u8 {
        match self.fragment {
            Fragment::Later => 0,
            _ => self.key.proto,
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

/// IPv4 flags and fragment offset (first byte): more fragments, and the offset's high bits.
const MORE_FRAGMENTS: u8 = 0x20;
const OFFSET_HIGH: u8 = 0x1f;

#[inline(always)]
pub fn classify(ctx: &TcContext, ip: &Ipv4Hdr) -> L4Kind {
    if ip.vihl != 0x45 {
        return L4Kind::Other;
    }
    let datagram = FragmentKey {
        src_ip: ip.src_addr,
        dst_ip: ip.dst_addr,
        id: u16::from_ne_bytes(ip.id),
        proto: ip.proto,
        _pad: 0,
    };
    if (ip.frags[0] & OFFSET_HIGH) != 0 || ip.frags[1] != 0 {
        // SAFETY: FRAGMENTS values are plain keys, copied out at once.
        return match unsafe { FRAGMENTS.get(datagram) } {
            Some(key) => L4Kind::Flow(Flow {
                key: *key,
                fragment: Fragment::Later,
                datagram,
                tcp_flags: 0,
                src_port_at: NO_PORT,
                dst_port_at: NO_PORT,
            }),
            None => L4Kind::Other,
        };
    }
    let fragment = if ip.frags[0] & MORE_FRAGMENTS != 0 {
        Fragment::First
    } else {
        Fragment::Whole
    };
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
                fragment,
                datagram,
                tcp_flags,
                src_port_at: L4,
                dst_port_at: L4 + 2,
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
                        fragment,
                        datagram,
                        tcp_flags: 0,
                        src_port_at: L4 + 4,
                        dst_port_at: NO_PORT,
                    })
                }
                ICMP_ECHO_REPLY => {
                    key.dst_port = id;
                    L4Kind::Flow(Flow {
                        key,
                        fragment,
                        datagram,
                        tcp_flags: 0,
                        src_port_at: NO_PORT,
                        dst_port_at: L4 + 4,
                    })
                }
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED if fragment == Fragment::Whole => {
                    L4Kind::IcmpError
                }
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
