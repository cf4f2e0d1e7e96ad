//! The overlay through BPF_PROG_TEST_RUN: VXLAN encapsulation in `from_sandbox` (to an
//! endpoint on another host), ARP answered for remote endpoints, decapsulation in
//! `from_uplink`, and what each refuses or leaves alone. The route to the other host's
//! tunnel address is looked up in a throwaway netns (see `nat::in_uplink_netns`); the
//! underlay interface `up0` is not an uplink here.

use netd::dataplane::TestRunOutcome;
use netd_common::RemoteEndpoint;

use super::nat::{in_uplink_netns, ROUTER, ROUTER_MAC, UPLINK_IP, UPLINK_MAC};
use super::world::*;

/// The other host's tunnel address (the test netns' router, with a permanent neighbour).
const VTEP: Ipv4Addr = ROUTER;
/// This host's tunnel address.
const LOCAL: Ipv4Addr = UPLINK_IP;
const VNI_A: u32 = 256;
const VNI_B: u32 = 257;
const VNI_C: u32 = 258;
/// Endpoints on the other host, one per network of the world.
const RA: Ipv4Addr = ip(10, 1, 0, 50);
const RB: Ipv4Addr = ip(10, 2, 0, 50);
const RC: Ipv4Addr = ip(10, 3, 0, 50);
const OUTER_SPORT: u16 = 50000;
/// `ipv4_header` gives every test packet id 1; encapsulation copies it.
const INNER_ID: u16 = 1;

fn remote(net_id: u32, vni: u32, addr: Ipv4Addr) -> RemoteEndpoint {
    RemoteEndpoint {
        vtep: VTEP.octets(),
        vni,
        net_id,
        mac: endpoint_mac(addr),
        _pad: [0; 2],
    }
}

/// The world with `sender` on the test ifindex, overlay on with `up0` as the underlay,
/// a VNI per network A-C and one remote endpoint on each.
fn overlay_world(sender: From) -> Dataplane {
    let mut dp = dataplane(sender);
    dp.set_overlay(LOCAL, "up0").expect("overlay config");
    for (vni, net_id, addr) in [(VNI_A, NET_A, RA), (VNI_B, NET_B, RB), (VNI_C, NET_C, RC)] {
        dp.put_vni(vni, net_id).expect("vni");
        dp.put_remote_endpoint(addr, &remote(net_id, vni, addr))
            .expect("remote endpoint");
    }
    dp
}

/// Checks verdict, output frame and that the one counter moved by one packet of
/// `bytes` (the frame as the program left it).
fn check(
    dp: &Dataplane,
    what: &str,
    out: &TestRunOutcome,
    (verdict, want): (i32, &[u8]),
    (net_id, kind): (u32, StatKind),
) {
    assert_eq!(
        out.verdict,
        verdict,
        "{what}: verdict; stats {:?}",
        dp.stats()
    );
    assert!(
        out.frame == want,
        "{what}: output frame\n got:\n{}\n want:\n{}",
        hex(&out.frame),
        hex(want)
    );
    let counter = Counter {
        packets: 1,
        bytes: want.len() as u64,
    };
    assert_eq!(
        dp.stats().unwrap(),
        vec![StatRow {
            net_id,
            kind,
            counter
        }],
        "{what}: counters"
    );
}

/// The expected encapsulation of `inner` (whose Ethernet header is replaced) to RA.
fn encapsulated(inner: &[u8], sport: u16) -> Vec<u8> {
    let mut inner = inner.to_vec();
    inner[..6].copy_from_slice(&endpoint_mac(RA));
    vxlan(
        ROUTER_MAC,
        UPLINK_MAC,
        (LOCAL, sport),
        VTEP,
        (VNI_A, INNER_ID),
        &inner,
    )
}

#[test]
fn encapsulates_to_a_remote_endpoint_of_the_own_network() {
    in_uplink_netns(|_| {
        let routed = a1_udp(gateway_mac(GW_A), RA);
        let arped = a1_udp(endpoint_mac(RA), RA);
        let tcp_syn = tcp(endpoint_mac(RA), a1_mac(), (A1, 40000), (RA, 80), 0x02);
        for (what, frame) in [
            ("UDP sent to the gateway MAC", routed),
            ("UDP sent to the remote MAC", arped),
            ("TCP SYN", tcp_syn),
        ] {
            let mut dp = overlay_world(From::A1);
            let out = dp.test_run(&frame, 1).unwrap();
            assert_eq!(out.frame.len(), frame.len() + 50, "{what}: 50 bytes more");
            let sport = u16::from_be_bytes([out.frame[34], out.frame[35]]);
            assert!(
                sport >= 49152,
                "{what}: source port {sport} from the flow hash"
            );
            let want = encapsulated(&frame, sport);
            check(
                &dp,
                what,
                &out,
                (TC_ACT_REDIRECT, &want),
                delivered(NET_A, Delivery::Encap),
            );
            assert!(checksums_valid(&out.frame), "{what}: outer checksums");
            assert!(checksums_valid(&out.frame[50..]), "{what}: inner checksums");
            // The same flow always takes the same outer source port.
            let again = dp.test_run(&frame, 1).unwrap();
            assert_eq!(again.frame, out.frame, "{what}: deterministic");
        }
    });
}

#[test]
fn encapsulation_without_a_neighbour_entry_leaves_the_addresses_to_redirect_neigh() {
    in_uplink_netns(|_| {
        let mut dp = overlay_world(From::A1);
        let far = ip(10, 250, 0, 77);
        let mut moved = remote(NET_A, VNI_A, RA);
        moved.vtep = far.octets();
        dp.put_remote_endpoint(RA, &moved).unwrap();
        let frame = a1_udp(gateway_mac(GW_A), RA);
        let out = dp.test_run(&frame, 1).unwrap();
        assert_eq!(out.verdict, TC_ACT_REDIRECT, "stats {:?}", dp.stats());
        assert_eq!(
            &out.frame[..12],
            &frame[..12],
            "addresses left as they were: the neighbour layer writes them"
        );
        assert_eq!(&out.frame[30..34], &far.octets(), "outer destination");
        assert!(checksums_valid(&out.frame));
    });
}

#[test]
fn remote_endpoints_obey_isolation_and_icc() {
    in_uplink_netns(|_| {
        use DropReason::*;
        let c1_mac = endpoint_mac(C1);
        let cases = [
            (
                "ARP for a remote endpoint is answered with its MAC",
                From::A1,
                arp_request(a1_mac(), A1, RA),
                TC_ACT_REDIRECT,
                Expect::Frame(arp_reply(endpoint_mac(RA), RA, a1_mac(), A1)),
                delivered(NET_A, Delivery::ArpReply),
            ),
            (
                "ARP for another network's remote endpoint is isolated",
                From::A1,
                arp_request(a1_mac(), A1, RB),
                TC_ACT_SHOT,
                Expect::Unchanged,
                dropped(NET_A, NetworkIsolation),
            ),
            (
                "ARP for a remote endpoint with icc off is dropped",
                From::C1,
                arp_request(c1_mac, C1, RC),
                TC_ACT_SHOT,
                Expect::Unchanged,
                dropped(NET_C, IccDisabled),
            ),
            (
                "unicast to another network's remote endpoint is isolated",
                From::A1,
                a1_udp(gateway_mac(GW_A), RB),
                TC_ACT_SHOT,
                Expect::Unchanged,
                dropped(NET_A, NetworkIsolation),
            ),
            (
                "unicast to a remote endpoint with icc off is dropped",
                From::C1,
                udp(gateway_mac(GW_C), c1_mac, C1, RC, 18),
                TC_ACT_SHOT,
                Expect::Unchanged,
                dropped(NET_C, IccDisabled),
            ),
            (
                "a free address of the own subnet is still unknown",
                From::A1,
                a1_udp(gateway_mac(GW_A), ip(10, 1, 0, 99)),
                TC_ACT_SHOT,
                Expect::Unchanged,
                dropped(NET_A, UnknownDestination),
            ),
            (
                "broadcast stays on this host",
                From::A1,
                a1_udp(BROADCAST_MAC, ip(10, 1, 0, 255)),
                TC_ACT_OK,
                Expect::Unchanged,
                delivered(NET_A, Delivery::Flood),
            ),
        ];
        for (what, from, frame, verdict, output, counted) in cases {
            let case = Case {
                what,
                from,
                frame,
                verdict,
                output,
                counted,
            };
            run_on(&mut overlay_world(from), &case);
        }
    });
}

/// VXLAN from the other host to this one, VNI `vni`, around `inner`.
fn from_vtep(vni: u32, inner: &[u8]) -> Vec<u8> {
    vxlan(
        UPLINK_MAC,
        ROUTER_MAC,
        (VTEP, OUTER_SPORT),
        LOCAL,
        (vni, 7),
        inner,
    )
}

/// UDP from `src` to `dst`, addressed to the gateway MAC of network A (the remote host's
/// view; decapsulation readdresses it).
fn inner_udp(src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    udp(gateway_mac(GW_A), endpoint_mac(src), src, dst, 18)
}

#[test]
fn decapsulates_into_the_local_endpoint() {
    in_uplink_netns(|_| {
        let inner = inner_udp(RA, A2);
        let mut dp = overlay_world(From::A1);
        let out = dp.test_run_uplink(&from_vtep(VNI_A, &inner), 1).unwrap();
        let want = with_dst_mac(&inner, endpoint_mac(A2));
        check(
            &dp,
            "VXLAN to a local endpoint",
            &out,
            (TC_ACT_REDIRECT, &want),
            delivered(NET_A, Delivery::Decap),
        );
        assert!(checksums_valid(&out.frame));

        // A TCP segment keeps its bytes (and checksum) exactly.
        let seg = tcp(UPLINK_MAC, endpoint_mac(RA), (RA, 80), (A2, 40000), 0x12);
        let mut dp = overlay_world(From::A1);
        let out = dp.test_run_uplink(&from_vtep(VNI_A, &seg), 1).unwrap();
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(out.frame, with_dst_mac(&seg, endpoint_mac(A2)));
    });
}

#[test]
fn decapsulation_refuses_what_the_cluster_store_does_not_vouch_for() {
    in_uplink_netns(|_| {
        use DropReason::*;
        let mut other_vtep = from_vtep(VNI_A, &inner_udp(RA, A2));
        other_vtep[26..30].copy_from_slice(&ip(10, 250, 0, 9).octets());
        let sum = checksum(&{
            let mut h = other_vtep[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            h
        });
        other_vtep[24..26].copy_from_slice(&sum.to_be_bytes());
        let cases = [
            (
                "unknown VNI",
                from_vtep(999, &inner_udp(RA, A2)),
                dropped(0, UnknownVni),
            ),
            (
                "inner source is no remote endpoint",
                from_vtep(VNI_A, &inner_udp(ip(10, 1, 0, 77), A2)),
                dropped(NET_A, SpoofedIp),
            ),
            (
                "inner source lives behind another tunnel address",
                other_vtep,
                dropped(NET_A, SpoofedIp),
            ),
            (
                "VNI of another network than the inner source's",
                from_vtep(VNI_B, &inner_udp(RA, A2)),
                dropped(NET_B, SpoofedIp),
            ),
            (
                "VNI of another network than the local endpoint's",
                from_vtep(VNI_B, &inner_udp(RB, A2)),
                dropped(NET_B, UnknownDestination),
            ),
            (
                "no local endpoint at the inner destination",
                from_vtep(VNI_A, &inner_udp(RA, ip(10, 1, 0, 99))),
                dropped(NET_A, UnknownDestination),
            ),
            (
                "icc off",
                from_vtep(VNI_C, &inner_udp(RC, C2)),
                dropped(NET_C, IccDisabled),
            ),
            (
                "inner frame is not IPv4",
                from_vtep(VNI_A, &arp_request(endpoint_mac(RA), RA, A2)),
                dropped(NET_A, UnsupportedProtocol),
            ),
        ];
        for (what, frame, counted) in cases {
            let mut dp = overlay_world(From::A1);
            let out = dp.test_run_uplink(&frame, 1).unwrap();
            check(&dp, what, &out, (TC_ACT_SHOT, &frame), counted);
        }
    });
}

#[test]
fn decapsulation_leaves_everything_else_to_the_host() {
    in_uplink_netns(|_| {
        let inner = inner_udp(RA, A2);
        let mut no_flag = from_vtep(VNI_A, &inner);
        no_flag[42] = 0;
        let mut fragment = from_vtep(VNI_A, &inner);
        fragment[20] = 0x20; // more fragments
        let h = {
            let mut h = fragment[14..34].to_vec();
            h[10..12].copy_from_slice(&[0, 0]);
            checksum(&h)
        };
        fragment[24..26].copy_from_slice(&h.to_be_bytes());
        let cases = [
            (
                "UDP to another port",
                udp(UPLINK_MAC, ROUTER_MAC, VTEP, LOCAL, 18),
            ),
            (
                "VXLAN to another address",
                vxlan(
                    UPLINK_MAC,
                    ROUTER_MAC,
                    (VTEP, OUTER_SPORT),
                    ip(10, 250, 0, 2),
                    (VNI_A, 7),
                    &inner,
                ),
            ),
            ("VXLAN without the VNI flag", no_flag),
            ("a fragment of VXLAN", fragment),
            (
                "TCP to the tunnel address",
                tcp(UPLINK_MAC, ROUTER_MAC, (VTEP, 4789), (LOCAL, 4789), 0x02),
            ),
        ];
        for (what, frame) in cases {
            let mut dp = overlay_world(From::A1);
            let out = dp.test_run_uplink(&frame, 1).unwrap();
            check(
                &dp,
                what,
                &out,
                (TC_ACT_OK, &frame),
                delivered(0, Delivery::Host),
            );
        }
    });
}

#[test]
fn overlay_maps_follow_writes() {
    in_uplink_netns(|_| {
        let mut dp = overlay_world(From::A1);
        let remotes = dp.remote_endpoints().unwrap();
        assert_eq!(
            remotes,
            vec![
                (RA, remote(NET_A, VNI_A, RA)),
                (RB, remote(NET_B, VNI_B, RB)),
                (RC, remote(NET_C, VNI_C, RC)),
            ]
        );
        assert_eq!(dp.maps().remote_endpoints().unwrap(), remotes);
        assert_eq!(
            dp.maps().vnis().unwrap(),
            vec![(VNI_A, NET_A), (VNI_B, NET_B), (VNI_C, NET_C)]
        );
        dp.remove_remote_endpoint(RB).unwrap();
        dp.remove_remote_endpoint(RB).unwrap();
        dp.remove_vni(VNI_B).unwrap();
        dp.remove_vni(VNI_B).unwrap();
        assert_eq!(dp.remote_endpoints().unwrap().len(), 2);
        assert_eq!(dp.maps().vnis().unwrap().len(), 2);
        assert!(dp.put_vni(1 << 24, NET_A).is_err(), "VNIs have 24 bits");
    });
}
