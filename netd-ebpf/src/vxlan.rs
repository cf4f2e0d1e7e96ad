//! The VXLAN wire format (RFC 7348) as netd writes and reads it: after the outer Ethernet
//! header, an outer IPv4 header without options, UDP to port 4789, the 8-byte VXLAN
//! header, then the inner Ethernet frame.

use netd_common::VXLAN_OVERHEAD;
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};

/// The "I" flag: the VNI is valid. The only flag VXLAN defines.
pub const FLAG_VNI: u8 = 0x08;

#[repr(C)]
pub struct VxlanHdr {
    pub flags: u8,
    pub _reserved: [u8; 3],
    /// 24-bit VNI, network order.
    pub vni: [u8; 3],
    pub _reserved2: u8,
}

impl VxlanHdr {
    #[inline(always)]
    pub fn new(vni: u32) -> Self {
        let [_, a, b, c] = vni.to_be_bytes();
        VxlanHdr {
            flags: FLAG_VNI,
            _reserved: [0; 3],
            vni: [a, b, c],
            _reserved2: 0,
        }
    }

    #[inline(always)]
    pub fn vni(&self) -> u32 {
        u32::from_be_bytes([0, self.vni[0], self.vni[1], self.vni[2]])
    }
}

/// What sits between the outer Ethernet header and the inner IP packet: exactly what
/// encapsulation inserts and decapsulation removes.
#[repr(C)]
pub struct Tunnel {
    pub ip: Ipv4Hdr,
    pub udp: UdpHdr,
    pub vxlan: VxlanHdr,
    pub inner: EthHdr,
}

const _: () = assert!(core::mem::size_of::<VxlanHdr>() == 8);
const _: () = assert!(core::mem::size_of::<Tunnel>() == VXLAN_OVERHEAD as usize);

/// The RFC 1071 checksum of an IPv4 header without options whose checksum field is 0.
#[inline(always)]
pub fn ipv4_checksum(ip: &Ipv4Hdr) -> [u8; 2] {
    let word = |b: [u8; 2]| u32::from(u16::from_be_bytes(b));
    let addr = |a: [u8; 4]| word([a[0], a[1]]) + word([a[2], a[3]]);
    let mut sum = word([ip.vihl, ip.tos])
        + word(ip.tot_len)
        + word(ip.id)
        + word(ip.frags)
        + word([ip.ttl, ip.proto])
        + word(ip.check)
        + addr(ip.src_addr)
        + addr(ip.dst_addr);
    // Ten 16-bit words: two folds always suffice.
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
}
