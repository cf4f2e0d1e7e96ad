//! Frame builders for BPF_PROG_TEST_RUN tables. Everything is built byte by byte, so a
//! test's expected output frame is as readable as its input.

use std::net::Ipv4Addr;

pub type Mac = [u8; 6];

pub const BROADCAST_MAC: Mac = [0xff; 6];
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ARP_REQUEST: u16 = 1;
pub const ARP_REPLY: u16 = 2;

/// An endpoint's MAC as netd assigns it: 02:42 + the IPv4 bytes (Docker's scheme).
pub fn endpoint_mac(ip: Ipv4Addr) -> Mac {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// A gateway's MAC as netd assigns it: 02:4e + the gateway IPv4 bytes.
pub fn gateway_mac(ip: Ipv4Addr) -> Mac {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x4e, a, b, c, d]
}

/// The multicast MAC for an IPv4 group (01:00:5e + low 23 bits).
pub fn multicast_mac(group: Ipv4Addr) -> Mac {
    let [_, b, c, d] = group.octets();
    [0x01, 0x00, 0x5e, b & 0x7f, c, d]
}

/// Ethernet header + payload.
pub fn ethernet(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An Ethernet/IPv4 ARP body (28 bytes).
pub fn arp_body(op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut body = Vec::with_capacity(28);
    body.extend_from_slice(&1u16.to_be_bytes()); // htype: Ethernet
    body.extend_from_slice(&ETH_P_IP.to_be_bytes()); // ptype: IPv4
    body.push(6);
    body.push(4);
    body.extend_from_slice(&op.to_be_bytes());
    body.extend_from_slice(&sha);
    body.extend_from_slice(&spa.octets());
    body.extend_from_slice(&tha);
    body.extend_from_slice(&tpa.octets());
    body
}

/// A broadcast "who has `target`? tell `sender_ip`" from `sender_mac`.
pub fn arp_request(sender_mac: Mac, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    ethernet(
        BROADCAST_MAC,
        sender_mac,
        ETH_P_ARP,
        &arp_body(ARP_REQUEST, sender_mac, sender_ip, [0; 6], target),
    )
}

/// A unicast "`sender_ip` is at `sender_mac`" to `target_mac`/`target_ip`.
pub fn arp_reply(
    sender_mac: Mac,
    sender_ip: Ipv4Addr,
    target_mac: Mac,
    target_ip: Ipv4Addr,
) -> Vec<u8> {
    ethernet(
        target_mac,
        sender_mac,
        ETH_P_ARP,
        &arp_body(ARP_REPLY, sender_mac, sender_ip, target_mac, target_ip),
    )
}

/// The RFC 1071 checksum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (no options) with a valid checksum, for `payload_len` bytes of `proto`.
pub fn ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize) -> Vec<u8> {
    let total = u16::try_from(20 + payload_len).expect("IPv4 packet too long");
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0x40, 0]); // id 1, DF
    h.push(64);
    h.push(proto);
    h.extend_from_slice(&[0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// An Ethernet/IPv4/UDP frame with `payload_len` zero bytes of payload (checksum 0: none).
pub fn udp(
    dst_mac: Mac,
    src_mac: Mac,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    payload_len: usize,
) -> Vec<u8> {
    let udp_len = 8 + payload_len;
    let mut packet = ipv4_header(src, dst, 17, udp_len);
    packet.extend_from_slice(&40000u16.to_be_bytes());
    packet.extend_from_slice(&5000u16.to_be_bytes());
    packet.extend_from_slice(&u16::try_from(udp_len).expect("UDP too long").to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.resize(packet.len() + payload_len, 0);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// An Ethernet/IPv6 frame with an empty UDP-less payload (the program drops it anyway).
pub fn ipv6(dst_mac: Mac, src_mac: Mac) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0, 0, 0, 59, 64]; // no next header
    h.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    h.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ethernet(dst_mac, src_mac, ETH_P_IPV6, &h)
}

/// `frame` with the destination MAC replaced.
pub fn with_dst_mac(frame: &[u8], dst: Mac) -> Vec<u8> {
    let mut out = frame.to_vec();
    out[..6].copy_from_slice(&dst);
    out
}

/// Hex dump for assertion messages: 16 bytes a line.
pub fn hex(frame: &[u8]) -> String {
    frame
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
