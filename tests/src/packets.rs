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

/// The VXLAN port (RFC 7348).
pub const VXLAN_PORT: u16 = 4789;

/// An outer IPv4 header as netd's encapsulation writes it: TTL 64, DF off, id `id`.
pub fn outer_ipv4_header(src: Ipv4Addr, dst: Ipv4Addr, id: u16, payload_len: usize) -> Vec<u8> {
    let mut h = ipv4_header(src, dst, 17, payload_len);
    h[4..6].copy_from_slice(&id.to_be_bytes());
    h[6..8].copy_from_slice(&[0, 0]);
    h[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h
}

/// Ethernet/IPv4/UDP(4789)/VXLAN(`vni`, I flag) around the Ethernet frame `inner`, outer
/// IPv4 id `id` and no UDP checksum, as netd encapsulates.
pub fn vxlan(
    dst_mac: Mac,
    src_mac: Mac,
    (src, sport): (Ipv4Addr, u16),
    dst: Ipv4Addr,
    (vni, id): (u32, u16),
    inner: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + 8 + inner.len();
    let mut packet = outer_ipv4_header(src, dst, id, udp_len);
    packet.extend_from_slice(&sport.to_be_bytes());
    packet.extend_from_slice(&VXLAN_PORT.to_be_bytes());
    packet.extend_from_slice(&u16::try_from(udp_len).expect("UDP too long").to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    packet.extend_from_slice(&[0x08, 0, 0, 0]);
    packet.extend_from_slice(&(vni << 8).to_be_bytes());
    packet.extend_from_slice(inner);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
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

/// The TCP checksum over the IPv4 pseudo-header and `segment` (checksum field included).
pub fn tcp_udp_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(12 + segment.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(
        &u16::try_from(segment.len())
            .expect("segment too long")
            .to_be_bytes(),
    );
    pseudo.extend_from_slice(segment);
    checksum(&pseudo)
}

/// An Ethernet/IPv4/TCP frame (20-byte header, no payload) with valid checksums.
pub fn tcp(
    dst_mac: Mac,
    src_mac: Mac,
    (src, sport): (Ipv4Addr, u16),
    (dst, dport): (Ipv4Addr, u16),
    flags: u8,
) -> Vec<u8> {
    let mut seg = Vec::with_capacity(20);
    seg.extend_from_slice(&sport.to_be_bytes());
    seg.extend_from_slice(&dport.to_be_bytes());
    seg.extend_from_slice(&1u32.to_be_bytes()); // seq
    seg.extend_from_slice(&0u32.to_be_bytes()); // ack
    seg.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    let sum = tcp_udp_checksum(src, dst, 6, &seg);
    seg[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut packet = ipv4_header(src, dst, 6, seg.len());
    packet.extend_from_slice(&seg);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// An Ethernet/IPv4 ICMP error (`icmp_type`/`code`) from `router` to `dst`, quoting the
/// IPv4 header and first 8 bytes of `quoted` (an Ethernet frame).
pub fn icmp_error(
    dst_mac: Mac,
    src_mac: Mac,
    router: Ipv4Addr,
    dst: Ipv4Addr,
    (icmp_type, code): (u8, u8),
    quoted: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![icmp_type, code, 0, 0, 0, 0, 0x05, 0xdc]; // next-hop MTU 1500
    icmp.extend_from_slice(&quoted[14..14 + 28]);
    let sum = checksum(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut packet = ipv4_header(router, dst, 1, icmp.len());
    packet.extend_from_slice(&icmp);
    ethernet(dst_mac, src_mac, ETH_P_IP, &packet)
}

/// Whether every checksum of an Ethernet/IPv4 frame verifies: the IPv4 header's, and the
/// TCP/UDP (with pseudo-header) or ICMP one; for an ICMP error, the quoted header's too.
pub fn checksums_valid(frame: &[u8]) -> bool {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if checksum(&ip[..ihl]) != 0 {
        return false;
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let l4 = &ip[ihl..total];
    let (src, dst) = (
        Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    );
    match ip[9] {
        // UDP's checksum 0 means "none".
        17 if l4[6..8] == [0, 0] => true,
        6 | 17 => tcp_udp_checksum(src, dst, ip[9], l4) == 0,
        1 => checksum(l4) == 0 && (l4[0] != 3 && l4[0] != 11 || checksum(&l4[8..28]) == 0),
        _ => true,
    }
}

/// Source and destination (address, port) of an Ethernet/IPv4 TCP/UDP frame.
pub fn ends(frame: &[u8]) -> ((Ipv4Addr, u16), (Ipv4Addr, u16)) {
    let ip = &frame[14..];
    let l4 = &ip[20..];
    (
        (
            Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            u16::from_be_bytes([l4[0], l4[1]]),
        ),
        (
            Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
    )
}
