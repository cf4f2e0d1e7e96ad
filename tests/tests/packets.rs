//! Packet tests of `from_sandbox` through BPF_PROG_TEST_RUN, table-driven: a sender, an
//! input frame, the expected verdict, the expected output frame and the one counter that
//! must move. Plus map-state and attach checks of the loader. Needs root (CAP_BPF).
//!
//! Under BPF_PROG_TEST_RUN the program sees the frame arrive on `lo` (ifindex 1), so each
//! case registers its sending endpoint at `TEST_RUN_IFINDEX`.

use std::{net::Ipv4Addr, process::Command};

use netd::dataplane::{Dataplane, NetworkEntry, StatKind, StatRow, TEST_RUN_IFINDEX};
use netd_common::{
    ip_slot, Counter, Delivery, DropReason, EndpointInfo, MemberKey, EP_CACHE_SLOTS,
};
use netd_tests::packets::*;

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;
const TC_ACT_REDIRECT: i32 = 7;

const fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

// The world every case runs in: four networks, two or three endpoints each.
const NET_A: u32 = 1; // 10.1.0.0/24, icc
const NET_B: u32 = 2; // 10.2.0.0/24, icc
const NET_C: u32 = 3; // 10.3.0.0/24, icc off
const NET_D: u32 = 4; // 10.4.0.0/24, internal

const A1: Ipv4Addr = ip(10, 1, 0, 2);
const A2: Ipv4Addr = ip(10, 1, 0, 3);
const A3: Ipv4Addr = ip(10, 1, 0, 4);
const B1: Ipv4Addr = ip(10, 2, 0, 2);
const C1: Ipv4Addr = ip(10, 3, 0, 2);
const C2: Ipv4Addr = ip(10, 3, 0, 3);
const D1: Ipv4Addr = ip(10, 4, 0, 2);
const D2: Ipv4Addr = ip(10, 4, 0, 3);
const GW_A: Ipv4Addr = ip(10, 1, 0, 1);
const GW_B: Ipv4Addr = ip(10, 2, 0, 1);
const GW_C: Ipv4Addr = ip(10, 3, 0, 1);
const GW_D: Ipv4Addr = ip(10, 4, 0, 1);
const OUTSIDE: Ipv4Addr = ip(8, 8, 8, 8);

fn network(net_id: u32, third: u8, icc: bool, internal: bool) -> NetworkEntry {
    let gateway = ip(10, third, 0, 1);
    NetworkEntry {
        net_id,
        subnet: format!("10.{third}.0.0/24").parse().unwrap(),
        gateway,
        gateway_mac: gateway_mac(gateway),
        icc,
        internal,
    }
}

fn networks() -> Vec<NetworkEntry> {
    vec![
        network(NET_A, 1, true, false),
        network(NET_B, 2, true, false),
        network(NET_C, 3, false, false),
        network(NET_D, 4, true, true),
    ]
}

fn endpoint(host_ifindex: u32, net_id: u32, addr: Ipv4Addr) -> EndpointInfo {
    EndpointInfo {
        host_ifindex,
        net_id,
        ip: addr.octets(),
        mac: endpoint_mac(addr),
        _pad: [0; 2],
    }
}

/// The endpoints other than the sender, on made-up ifindexes (redirect helpers only
/// record the target under BPF_PROG_TEST_RUN).
fn peers() -> Vec<EndpointInfo> {
    vec![
        endpoint(1003, NET_A, A2),
        endpoint(1004, NET_A, A3),
        endpoint(2002, NET_B, B1),
        endpoint(3003, NET_C, C2),
        endpoint(4003, NET_D, D2),
    ]
}

/// Which endpoint sends the case's frame (it sits on `TEST_RUN_IFINDEX`).
#[derive(Clone, Copy, Debug)]
enum From {
    A1,
    C1,
    D1,
    /// No endpoint on the test ifindex.
    Nobody,
}

impl From {
    fn endpoint(self) -> Option<EndpointInfo> {
        match self {
            From::A1 => Some(endpoint(TEST_RUN_IFINDEX, NET_A, A1)),
            From::C1 => Some(endpoint(TEST_RUN_IFINDEX, NET_C, C1)),
            From::D1 => Some(endpoint(TEST_RUN_IFINDEX, NET_D, D1)),
            From::Nobody => None,
        }
    }
}

/// A fresh unpinned dataplane holding the world plus `from` on the test ifindex.
fn dataplane(from: From) -> Dataplane {
    let mut dp = Dataplane::open_unpinned().expect("loading the dataplane (are we root?)");
    let mut eps = peers();
    eps.extend(from.endpoint());
    dp.sync(&networks(), &eps).expect("writing the test world");
    dp
}

enum Expect {
    /// The program left the frame as it was.
    Unchanged,
    /// The program rewrote it into exactly this.
    Frame(Vec<u8>),
}

struct Case {
    what: &'static str,
    from: From,
    frame: Vec<u8>,
    verdict: i32,
    output: Expect,
    /// The single counter that must read one packet of this frame's length.
    counted: (u32, StatKind),
}

fn delivered(net_id: u32, d: Delivery) -> (u32, StatKind) {
    (net_id, StatKind::Delivery(d))
}

fn dropped(net_id: u32, r: DropReason) -> (u32, StatKind) {
    (net_id, StatKind::Drop(r))
}

fn a1_mac() -> Mac {
    endpoint_mac(A1)
}

/// A1 -> `dst` over UDP, addressed to `dst_mac`.
fn a1_udp(dst_mac: Mac, dst: Ipv4Addr) -> Vec<u8> {
    udp(dst_mac, a1_mac(), A1, dst, 18)
}

fn arp_cases() -> Vec<Case> {
    use DropReason::*;
    let gw_reply = arp_reply(gateway_mac(GW_A), GW_A, a1_mac(), A1);
    let probe = ethernet(
        BROADCAST_MAC,
        a1_mac(),
        ETH_P_ARP,
        &arp_body(ARP_REQUEST, a1_mac(), ip(0, 0, 0, 0), [0; 6], GW_A),
    );
    let probe_reply = arp_reply(gateway_mac(GW_A), GW_A, a1_mac(), ip(0, 0, 0, 0));
    let spoofed_sha = ethernet(
        BROADCAST_MAC,
        a1_mac(),
        ETH_P_ARP,
        &arp_body(ARP_REQUEST, endpoint_mac(A2), A1, [0; 6], A3),
    );
    let mut bad_op = arp_request(a1_mac(), A1, A2);
    bad_op[21] = 9;
    vec![
        Case {
            what: "ARP request for the gateway is answered in place and sent back",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, GW_A),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Frame(gw_reply),
            counted: delivered(NET_A, Delivery::ArpReply),
        },
        Case {
            what: "ARP probe (sender 0.0.0.0) for the gateway is answered too",
            from: From::A1,
            frame: probe,
            verdict: TC_ACT_REDIRECT,
            output: Expect::Frame(probe_reply),
            counted: delivered(NET_A, Delivery::ArpReply),
        },
        Case {
            what: "ARP request for a same-network peer goes to that peer",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, A2),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Peer),
        },
        Case {
            what: "ARP request for another network's endpoint is isolated",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, B1),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, NetworkIsolation),
        },
        Case {
            what: "ARP request for a peer with icc off is dropped",
            from: From::C1,
            frame: arp_request(endpoint_mac(C1), C1, C2),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_C, IccDisabled),
        },
        Case {
            what: "ARP request for the gateway works with icc off",
            from: From::C1,
            frame: arp_request(endpoint_mac(C1), C1, GW_C),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Frame(arp_reply(gateway_mac(GW_C), GW_C, endpoint_mac(C1), C1)),
            counted: delivered(NET_C, Delivery::ArpReply),
        },
        Case {
            what: "ARP request for a free address is dropped",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, ip(10, 1, 0, 99)),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnknownDestination),
        },
        Case {
            what: "gratuitous ARP for its own address goes to the host",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, A1),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Host),
        },
        Case {
            what: "ARP reply to a same-network peer goes to that peer",
            from: From::A1,
            frame: arp_reply(a1_mac(), A1, endpoint_mac(A2), A2),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Peer),
        },
        Case {
            what: "ARP reply to the host (gateway) goes to the host",
            from: From::A1,
            frame: arp_reply(a1_mac(), A1, gateway_mac(GW_A), GW_A),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Host),
        },
        Case {
            what: "ARP with a spoofed sender IP is dropped",
            from: From::A1,
            frame: arp_request(a1_mac(), A2, A3),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, SpoofedIp),
        },
        Case {
            what: "ARP with a spoofed sender MAC (own Ethernet source) is dropped",
            from: From::A1,
            frame: spoofed_sha,
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, SpoofedIp),
        },
        Case {
            what: "ARP with an unknown opcode is unsupported",
            from: From::A1,
            frame: bad_op,
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnsupportedProtocol),
        },
        Case {
            what: "truncated ARP is malformed",
            from: From::A1,
            frame: arp_request(a1_mac(), A1, GW_A)[..30].to_vec(),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, Malformed),
        },
    ]
}

fn ipv4_cases() -> Vec<Case> {
    use DropReason::*;
    let gw_a = gateway_mac(GW_A);
    let mut bad_version = a1_udp(endpoint_mac(A2), A2);
    bad_version[14] = 0x65;
    let mut bad_ihl = a1_udp(endpoint_mac(A2), A2);
    bad_ihl[14] = 0x44;
    vec![
        Case {
            what: "unicast to a peer is redirected as is",
            from: From::A1,
            frame: a1_udp(endpoint_mac(A2), A2),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Peer),
        },
        Case {
            what: "unicast to a peer sent to the gateway MAC gets the peer's MAC",
            from: From::A1,
            frame: a1_udp(gw_a, A3),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Frame(a1_udp(endpoint_mac(A3), A3)),
            counted: delivered(NET_A, Delivery::Peer),
        },
        Case {
            what: "unicast to another network's endpoint is isolated",
            from: From::A1,
            frame: a1_udp(gw_a, B1),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, NetworkIsolation),
        },
        Case {
            what: "unicast to a peer with icc off is dropped",
            from: From::C1,
            frame: udp(endpoint_mac(C2), endpoint_mac(C1), C1, C2, 18),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_C, IccDisabled),
        },
        Case {
            what: "unicast to a peer on an internal network is fine",
            from: From::D1,
            frame: udp(endpoint_mac(D2), endpoint_mac(D1), D1, D2, 18),
            verdict: TC_ACT_REDIRECT,
            output: Expect::Unchanged,
            counted: delivered(NET_D, Delivery::Peer),
        },
        Case {
            what: "spoofed source MAC is dropped",
            from: From::A1,
            frame: udp(endpoint_mac(A2), endpoint_mac(A3), A1, A2, 18),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, SpoofedMac),
        },
        Case {
            what: "spoofed source IP is dropped",
            from: From::A1,
            frame: udp(endpoint_mac(A2), a1_mac(), A3, A2, 18),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, SpoofedIp),
        },
        Case {
            what: "a frame from a veth with no endpoint counts under network 0",
            from: From::Nobody,
            frame: a1_udp(endpoint_mac(A2), A2),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(0, UnknownEndpoint),
        },
        Case {
            what: "to the own gateway goes to the host",
            from: From::A1,
            frame: a1_udp(gw_a, GW_A),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Host),
        },
        Case {
            what: "to another network's gateway goes to the host",
            from: From::A1,
            frame: a1_udp(gw_a, GW_B),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Host),
        },
        Case {
            what: "internal network: own gateway goes to the host",
            from: From::D1,
            frame: udp(gateway_mac(GW_D), endpoint_mac(D1), D1, GW_D, 18),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_D, Delivery::Host),
        },
        Case {
            what: "internal network: another network's gateway is dropped",
            from: From::D1,
            frame: udp(gateway_mac(GW_D), endpoint_mac(D1), D1, GW_A, 18),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_D, InternalNetwork),
        },
        Case {
            what: "outside every netd subnet goes to the host",
            from: From::A1,
            frame: a1_udp(gw_a, OUTSIDE),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Host),
        },
        Case {
            what: "internal network: outside is dropped",
            from: From::D1,
            frame: udp(gateway_mac(GW_D), endpoint_mac(D1), D1, OUTSIDE, 18),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_D, InternalNetwork),
        },
        Case {
            what: "a free address in the own subnet is dropped",
            from: From::A1,
            frame: a1_udp(gw_a, ip(10, 1, 0, 99)),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnknownDestination),
        },
        Case {
            what: "a free address in another netd subnet is dropped",
            from: From::A1,
            frame: a1_udp(gw_a, ip(10, 2, 0, 99)),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnknownDestination),
        },
        Case {
            what: "Ethernet broadcast floods and reaches the host",
            from: From::A1,
            frame: a1_udp(BROADCAST_MAC, ip(10, 1, 0, 255)),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Flood),
        },
        Case {
            what: "limited broadcast 255.255.255.255 floods",
            from: From::A1,
            frame: a1_udp(BROADCAST_MAC, ip(255, 255, 255, 255)),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Flood),
        },
        Case {
            what: "IPv4 multicast floods",
            from: From::A1,
            frame: a1_udp(multicast_mac(ip(224, 0, 0, 251)), ip(224, 0, 0, 251)),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Flood),
        },
        Case {
            what: "multicast IP behind a unicast MAC floods",
            from: From::A1,
            frame: a1_udp(gw_a, ip(239, 1, 2, 3)),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Flood),
        },
        Case {
            what: "subnet broadcast behind the gateway MAC floods",
            from: From::A1,
            frame: a1_udp(gw_a, ip(10, 1, 0, 255)),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_A, Delivery::Flood),
        },
        Case {
            what: "another subnet's broadcast is not ours to flood",
            from: From::A1,
            frame: a1_udp(gw_a, ip(10, 2, 0, 255)),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnknownDestination),
        },
        Case {
            what: "broadcast with icc off reaches only the host",
            from: From::C1,
            frame: udp(BROADCAST_MAC, endpoint_mac(C1), C1, ip(10, 3, 0, 255), 18),
            verdict: TC_ACT_OK,
            output: Expect::Unchanged,
            counted: delivered(NET_C, Delivery::Host),
        },
        Case {
            what: "IPv6 is unsupported",
            from: From::A1,
            frame: ipv6(endpoint_mac(A2), a1_mac()),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnsupportedProtocol),
        },
        Case {
            what: "VLAN-tagged frames are unsupported",
            from: From::A1,
            frame: ethernet(endpoint_mac(A2), a1_mac(), ETH_P_8021Q, &[0; 46]),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, UnsupportedProtocol),
        },
        Case {
            what: "spoofed MAC is checked before the ethertype",
            from: From::A1,
            frame: ipv6(endpoint_mac(A2), endpoint_mac(A2)),
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, SpoofedMac),
        },
        Case {
            // BPF_PROG_TEST_RUN refuses (EINVAL) an IPv4-ethertype frame shorter than a full
            // IPv4 header, so a truncated one is not testable here; a bad IHL takes the
            // same Malformed exit. Truncation itself is covered by the ARP table.
            what: "an IPv4 header length below 20 bytes is malformed",
            from: From::A1,
            frame: bad_ihl,
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, Malformed),
        },
        Case {
            what: "IP version 6 in an IPv4 ethertype is malformed",
            from: From::A1,
            frame: bad_version,
            verdict: TC_ACT_SHOT,
            output: Expect::Unchanged,
            counted: dropped(NET_A, Malformed),
        },
    ]
}

fn run_case(case: &Case) {
    let mut dp = dataplane(case.from);
    run_on(&mut dp, case);
}

/// Runs `case.frame` once on `dp` and checks verdict, output frame and the one counter.
fn run_on(dp: &mut Dataplane, case: &Case) {
    let out = dp
        .test_run(&case.frame, 1)
        .unwrap_or_else(|e| panic!("{}: test run failed: {e:#}", case.what));
    assert_eq!(
        out.verdict,
        case.verdict,
        "{}: verdict (0 ok, 2 shot, 7 redirect); stats {:?}",
        case.what,
        dp.stats()
    );
    let want = match &case.output {
        Expect::Unchanged => &case.frame,
        Expect::Frame(frame) => frame,
    };
    assert!(
        out.frame == *want,
        "{}: output frame\n got:\n{}\n want:\n{}",
        case.what,
        hex(&out.frame),
        hex(want)
    );
    let (net_id, kind) = case.counted;
    let expected = vec![StatRow {
        net_id,
        kind,
        counter: Counter {
            packets: 1,
            bytes: case.frame.len() as u64,
        },
    }];
    assert_eq!(dp.stats().unwrap(), expected, "{}: counters", case.what);
}

#[test]
fn arp_table() {
    for case in arp_cases() {
        run_case(&case);
    }
}

#[test]
fn ipv4_table() {
    for case in ipv4_cases() {
        run_case(&case);
    }
}

/// An address in 10.1.0.0/16 other than `taken` that shares `taken`'s EP_IP_CACHE slot.
fn ip_cache_neighbour(taken: Ipv4Addr) -> Ipv4Addr {
    let slot = |addr: Ipv4Addr| ip_slot(u32::from_ne_bytes(addr.octets()));
    (0..=u16::MAX)
        .map(|low| {
            let [c, d] = low.to_be_bytes();
            ip(10, 1, c, d)
        })
        .find(|&addr| addr != taken && slot(addr) == slot(taken))
        .expect("some 10.1.0.0/16 address shares the slot")
}

fn a1_endpoint() -> EndpointInfo {
    endpoint(TEST_RUN_IFINDEX, NET_A, A1)
}

fn a2_endpoint() -> EndpointInfo {
    endpoint(1003, NET_A, A2)
}

/// An endpoint whose ifindex shares A1's EP_IFX_CACHE slot.
fn a1_ifindex_twin() -> EndpointInfo {
    endpoint(TEST_RUN_IFINDEX + EP_CACHE_SLOTS, NET_B, ip(10, 2, 0, 9))
}

/// A NET_A endpoint whose IP shares A2's EP_IP_CACHE slot.
fn a2_ip_twin() -> EndpointInfo {
    endpoint(1005, NET_A, ip_cache_neighbour(A2))
}

/// The twin takes A1's ifindex slot before A1 arrives: A1 is then only in the hash.
fn a1_behind_twin(dp: &mut Dataplane) {
    dp.remove_endpoint(&a1_endpoint()).unwrap();
    dp.put_endpoint(&a1_ifindex_twin()).unwrap();
    dp.put_endpoint(&a1_endpoint()).unwrap();
}

/// A2 holds its IP slot (written first); its twin is only in the hash.
fn a2_twin_behind(dp: &mut Dataplane) {
    dp.put_endpoint(&a2_ip_twin()).unwrap();
}

/// A map change made on the world of `case.from` before its frame runs, and the case.
type SetupCase = (fn(&mut Dataplane), Case);

/// Cases where an endpoint cache holds another endpoint, or none, for the looked-up key:
/// the answer must be the hash map's.
fn cache_cases() -> Vec<SetupCase> {
    use DropReason::*;
    let gw_a = gateway_mac(GW_A);
    let twin = ip_cache_neighbour(A2);
    vec![
        (
            a1_behind_twin,
            Case {
                what: "a sender whose ifindex slot holds another endpoint is found in the hash",
                from: From::A1,
                frame: a1_udp(endpoint_mac(A2), A2),
                verdict: TC_ACT_REDIRECT,
                output: Expect::Unchanged,
                counted: delivered(NET_A, Delivery::Peer),
            },
        ),
        (
            |dp| {
                a1_behind_twin(dp);
                dp.remove_endpoint(&a1_endpoint()).unwrap();
            },
            Case {
                what: "a removed sender is gone although its ifindex slot holds another endpoint",
                from: From::A1,
                frame: a1_udp(endpoint_mac(A2), A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(0, UnknownEndpoint),
            },
        ),
        (
            |dp| dp.remove_endpoint(&a1_endpoint()).unwrap(),
            Case {
                what: "a removed sender is not served from the ifindex cache",
                from: From::A1,
                frame: a1_udp(endpoint_mac(A2), A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(0, UnknownEndpoint),
            },
        ),
        (
            // The veth now belongs to C1, so A1's source MAC is a spoof.
            |dp| {
                dp.put_endpoint(&endpoint(TEST_RUN_IFINDEX, NET_C, C1))
                    .unwrap()
            },
            Case {
                what: "a sender replaced on the same ifindex is judged as the new endpoint",
                from: From::A1,
                frame: a1_udp(endpoint_mac(A2), A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(NET_C, SpoofedMac),
            },
        ),
        (
            a2_twin_behind,
            Case {
                what: "a peer whose IP slot holds another endpoint is found in the hash",
                from: From::A1,
                frame: a1_udp(gw_a, twin),
                verdict: TC_ACT_REDIRECT,
                output: Expect::Frame(a1_udp(endpoint_mac(twin), twin)),
                counted: delivered(NET_A, Delivery::Peer),
            },
        ),
        (
            a2_twin_behind,
            Case {
                what: "the endpoint holding a shared IP slot is still served",
                from: From::A1,
                frame: a1_udp(gw_a, A2),
                verdict: TC_ACT_REDIRECT,
                output: Expect::Frame(a1_udp(endpoint_mac(A2), A2)),
                counted: delivered(NET_A, Delivery::Peer),
            },
        ),
        (
            |dp| {
                a2_twin_behind(dp);
                dp.remove_endpoint(&a2_endpoint()).unwrap();
            },
            Case {
                what: "a removed peer is gone from its shared IP slot",
                from: From::A1,
                frame: a1_udp(gw_a, A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(NET_A, UnknownDestination),
            },
        ),
        (
            |dp| {
                a2_twin_behind(dp);
                dp.remove_endpoint(&a2_endpoint()).unwrap();
            },
            Case {
                what: "the hash-only peer is still found after its slot's holder left",
                from: From::A1,
                frame: a1_udp(gw_a, twin),
                verdict: TC_ACT_REDIRECT,
                output: Expect::Frame(a1_udp(endpoint_mac(twin), twin)),
                counted: delivered(NET_A, Delivery::Peer),
            },
        ),
        (
            // A newer endpoint, on another network, takes over A2's address.
            |dp| dp.put_endpoint(&endpoint(2010, NET_B, A2)).unwrap(),
            Case {
                what: "an IP taken over by a newer endpoint is served as the newer one",
                from: From::A1,
                frame: a1_udp(gw_a, A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(NET_A, NetworkIsolation),
            },
        ),
        (
            |dp| {
                let mut eps = peers();
                eps.retain(|ep| *ep != a2_endpoint());
                eps.push(a1_endpoint());
                dp.sync(&networks(), &eps).unwrap();
            },
            Case {
                what: "a peer left out of a sync is not served from the IP cache",
                from: From::A1,
                frame: arp_request(a1_mac(), A1, A2),
                verdict: TC_ACT_SHOT,
                output: Expect::Unchanged,
                counted: dropped(NET_A, UnknownDestination),
            },
        ),
    ]
}

#[test]
fn cache_table() {
    for (setup, case) in cache_cases() {
        let mut dp = dataplane(case.from);
        setup(&mut dp);
        run_on(&mut dp, &case);
    }
}

#[test]
fn counters_accumulate_per_run() {
    let mut dp = dataplane(From::A1);
    let frame = a1_udp(endpoint_mac(A2), A2);
    let out = dp.test_run(&frame, 50).expect("test run");
    assert_eq!(out.verdict, TC_ACT_REDIRECT);
    let rows = dp.stats().unwrap();
    assert_eq!(
        rows,
        vec![StatRow {
            net_id: NET_A,
            kind: StatKind::Delivery(Delivery::Peer),
            counter: Counter {
                packets: 50,
                bytes: 50 * frame.len() as u64
            },
        }]
    );
}

/// The verifier's work on `from_sandbox` is a budget: a change that blows it up (an
/// unrolled flood loop, a lost bounds check) should show here, not at load time in prod.
#[test]
fn verifier_budget() {
    let dp = Dataplane::open_unpinned().expect("loading the dataplane");
    let insns = dp
        .verified_instructions()
        .expect("program info")
        .expect("kernel reports verified_insns");
    eprintln!("from_sandbox: {insns} instructions processed by the verifier");
    assert!(
        insns < 200_000,
        "from_sandbox needs {insns} verified instructions; budget 200000 (limit 1M)"
    );
}

#[test]
fn map_state_follows_writes() {
    let mut dp = dataplane(From::A1);
    let maps = dp.maps();
    assert_eq!(
        maps.network_ids().unwrap(),
        vec![NET_A, NET_B, NET_C, NET_D]
    );
    assert_eq!(
        maps.members(NET_A).unwrap(),
        vec![TEST_RUN_IFINDEX, 1003, 1004]
    );
    assert_eq!(maps.subnets().unwrap().len(), 4);

    // An endpoint whose IP was already taken over by a newer one leaves that one alone.
    let old = endpoint(1003, NET_A, A2);
    let newer = endpoint(1010, NET_A, A2);
    dp.put_endpoint(&newer).unwrap();
    dp.remove_endpoint(&old).unwrap();
    let maps = dp.maps();
    assert!(maps.endpoint_ips().unwrap().contains(&A2));
    assert!(!maps.endpoint_ifindexes().unwrap().contains(&1003));
    dp.remove_endpoint(&old).expect("removing twice is fine");

    dp.set_members(NET_A, &[TEST_RUN_IFINDEX]).unwrap();
    assert_eq!(dp.maps().members(NET_A).unwrap(), vec![TEST_RUN_IFINDEX]);
    let slots: Vec<MemberKey> = dp
        .maps()
        .member_entries()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| k.net_id == NET_A)
        .collect();
    assert_eq!(
        slots,
        vec![MemberKey {
            net_id: NET_A,
            slot: 0
        }]
    );

    // put_network keeps the member count.
    dp.put_network(&network(NET_A, 1, false, false)).unwrap();
    assert_eq!(dp.maps().network(NET_A).unwrap().unwrap().member_count, 1);

    let frame = a1_udp(endpoint_mac(A2), A2);
    dp.test_run(&frame, 1).unwrap();
    dp.remove_network(&network(NET_A, 1, true, false)).unwrap();
    let maps = dp.maps();
    assert_eq!(maps.network_ids().unwrap(), vec![NET_B, NET_C, NET_D]);
    assert!(maps
        .member_entries()
        .unwrap()
        .iter()
        .all(|(k, _)| k.net_id != NET_A));
    assert!(maps.subnets().unwrap().iter().all(|(_, id)| *id != NET_A));
    assert!(maps.stats().unwrap().iter().all(|row| row.net_id != NET_A));
}

#[test]
fn sync_leaves_exactly_the_given_state() {
    let mut dp = dataplane(From::A1);
    let nets = vec![network(NET_B, 2, true, false)];
    let eps = vec![
        endpoint(2002, NET_B, B1),
        endpoint(2005, NET_B, ip(10, 2, 0, 5)),
    ];
    dp.sync(&nets, &eps).unwrap();
    let maps = dp.maps();
    assert_eq!(maps.network_ids().unwrap(), vec![NET_B]);
    assert_eq!(maps.endpoint_ifindexes().unwrap(), vec![2002, 2005]);
    assert_eq!(maps.endpoint_ips().unwrap(), vec![B1, ip(10, 2, 0, 5)]);
    assert_eq!(
        maps.subnets().unwrap(),
        vec![("10.2.0.0/24".parse().unwrap(), NET_B)]
    );
    assert_eq!(maps.members(NET_B).unwrap(), vec![2002, 2005]);
    assert_eq!(maps.member_entries().unwrap().len(), 2);

    dp.sync(&[], &[]).unwrap();
    let maps = dp.maps();
    assert!(maps.network_ids().unwrap().is_empty());
    assert!(maps.endpoints().unwrap().is_empty());
    assert!(maps.endpoint_ips().unwrap().is_empty());
    assert!(maps.subnets().unwrap().is_empty());
    assert!(maps.member_entries().unwrap().is_empty());
}

/// A throwaway named netns with a veth pair `h1xa`/`h1xb` (up, no IPv6 chatter); deleted
/// on drop. The dataplane calls run on a thread that entered it.
struct TestNetns {
    name: String,
}

impl TestNetns {
    fn new(tag: &str) -> Self {
        let name = format!("h1x{tag}{}", std::process::id());
        let ns = TestNetns { name };
        ns.ip(&["netns", "add", &ns.name]);
        for cmd in [
            "link add h1xa type veth peer name h1xb",
            "link set h1xa addrgenmode none",
            "link set h1xb addrgenmode none",
            "link set lo up",
            "link set h1xa up",
            "link set h1xb up",
        ] {
            let mut args = vec!["-n", ns.name.as_str()];
            args.extend(cmd.split(' '));
            ns.ip(&args);
        }
        ns
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("running ip");
        assert!(
            out.status.success(),
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn link(&self, dev: &str) -> serde_json::Value {
        let json = self.ip(&["-n", &self.name, "-j", "-s", "link", "show", "dev", dev]);
        let mut links: Vec<serde_json::Value> = serde_json::from_str(&json).expect("ip -j");
        links.remove(0)
    }

    fn rx_packets(&self, dev: &str) -> u64 {
        self.link(dev)["stats64"]["rx"]["packets"].as_u64().unwrap()
    }

    fn ifindex(&self, dev: &str) -> u32 {
        self.link(dev)["ifindex"].as_u64().unwrap() as u32
    }

    /// Runs `f` on a thread inside the netns.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("opening the netns");
                use std::os::fd::AsRawFd as _;
                // SAFETY: setns on this thread only; the fd is valid for the call.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("netns thread panicked")
        })
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

#[test]
fn flood_copies_reach_every_other_member() {
    let ns = TestNetns::new("fl");
    let member = ns.ifindex("h1xa");
    let before = ns.rx_packets("h1xb");
    let frame = a1_udp(BROADCAST_MAC, ip(10, 1, 0, 255));
    let verdict = ns.run(|| {
        let mut dp = Dataplane::open_unpinned().expect("loading the dataplane");
        let a1 = endpoint(TEST_RUN_IFINDEX, NET_A, A1);
        let a2 = endpoint(member, NET_A, A2);
        dp.sync(&networks(), &[a1, a2]).unwrap();
        dp.test_run(&frame, 3).unwrap().verdict
    });
    assert_eq!(verdict, TC_ACT_OK);
    // Three runs, one copy each out of h1xa (none to the sender itself) into h1xb.
    assert_eq!(ns.rx_packets("h1xb") - before, 3);
}

/// Programs of the tc filters at ingress of `dev` in the current netns, by name.
fn ingress_filters(dev: &str) -> Vec<String> {
    let out = std::process::Command::new("tc")
        .args(["-j", "filter", "show", "dev", dev, "ingress"])
        .output()
        .expect("running tc");
    assert!(out.status.success(), "tc filter show: {out:?}");
    let filters: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
    filters
        .iter()
        .filter_map(|f| f["options"]["prog"]["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn attach_is_idempotent_adoptable_and_outlives_the_loader() {
    let ns = TestNetns::new("at");
    let bpffs = std::path::PathBuf::from(format!("/sys/fs/bpf/h1x-packets-{}", std::process::id()));
    let result = ns.run(|| {
        let mut dp = Dataplane::open(&bpffs).expect("opening a pinned dataplane");
        dp.attach("h1xa").expect("attach");
        dp.attach("h1xa").expect("attach again");
        let attached = dp.attached().unwrap();
        let first = ingress_filters("h1xa");
        // The loader goes away (a daemon killed or stopped): the filter stays.
        drop(dp);
        let after_exit = ingress_filters("h1xa");
        // A restarted daemon adopts the filter instead of adding a second one.
        let mut again = Dataplane::open(&bpffs).expect("reopening the pins");
        again.attach("h1xa").expect("attach from a new load");
        let adopted = ingress_filters("h1xa");
        again.detach("h1xa").unwrap();
        again.detach("h1xa").expect("detaching twice is fine");
        let after_detach = ingress_filters("h1xa");
        (attached, first, after_exit, adopted, after_detach)
    });
    let view = Dataplane::open_pins_readonly(&bpffs).expect("opening pins read-only");
    assert!(view.network_ids().unwrap().is_empty());
    let _ = std::fs::remove_dir_all(&bpffs);
    let one = vec!["from_sandbox".to_string()];
    assert_eq!(
        result,
        (
            vec!["h1xa".to_string()],
            one.clone(),
            one.clone(),
            one,
            vec![]
        )
    );
}

#[test]
fn open_refuses_a_path_off_bpffs() {
    let err = match Dataplane::open(std::path::Path::new("/tmp/h1x-not-bpffs")) {
        Ok(_) => panic!("open on tmpfs must fail"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains("not on a bpf filesystem"), "{err}");
}
