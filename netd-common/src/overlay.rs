//! TEMPORARY contract stub; replaced by the dataplane branch.
use crate::{Ipv4Bytes, MacBytes};

pub const VXLAN_PORT: u16 = 4789;
/// Outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14.
pub const VXLAN_OVERHEAD: u32 = 50;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteEndpoint {
    pub vtep: Ipv4Bytes,
    pub vni: u32,
    pub net_id: u32,
    pub mac: MacBytes,
    pub _pad: [u8; 2],
}
