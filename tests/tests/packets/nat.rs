//! NAT through BPF_PROG_TEST_RUN: masquerade out an uplink and its reply, a published port
//! from outside and its reply, an ICMP error about a masqueraded flow, and what must stay
//! untouched. The route lookups run in a throwaway netns (the test thread joins it) with
//! an uplink of its own, so nothing here depends on, or changes, the machine's own routes.

use netd_common::{PublishKey, PublishTarget, UplinkInfo};

use super::world::*;

pub(crate) use netd_tests::uplink_netns::{ROUTER, ROUTER_MAC, UPLINK_IP, UPLINK_MAC};
const SERVER: Ipv4Addr = ip(10, 251, 0, 9);
const CLIENT: Ipv4Addr = ip(10, 251, 0, 7);
const SYN: u8 = 0x02;
const SYN_ACK: u8 = 0x12;
const ACK: u8 = 0x10;
/// Where A2 sits in the world (see `peers`).
const A2_IFINDEX: u32 = 1003;

/// Runs `body` inside a throwaway netns with an uplink (see `netd_tests::uplink_netns`).
pub(crate) fn in_uplink_netns(body: impl FnOnce(u32) + Send + 'static) {
    netd_tests::uplink_netns::in_uplink_netns("ndtnat", body).expect("setting up the uplink netns");
}

/// The world with `sender` on the test ifindex, the uplink, and the uplink address
/// as the host's.
pub(crate) fn nat_world(uplink_ifindex: u32, sender: EndpointInfo) -> Dataplane {
    let mut dp = Dataplane::open_unpinned().expect("loading the dataplane (are we root?)");
    let mut eps: Vec<EndpointInfo> = peers().into_iter().filter(|e| e.ip != sender.ip).collect();
    eps.push(sender);
    dp.sync(&networks(), &eps).expect("writing the test world");
    let uplink = UplinkInfo {
        ifindex: uplink_ifindex,
        ip: UPLINK_IP.octets(),
    };
    dp.set_uplinks(&[("up0".into(), uplink)]).expect("uplink");
    dp.set_host_addresses(&[UPLINK_IP]).expect("host addresses");
    dp
}

fn a1() -> EndpointInfo {
    endpoint(TEST_RUN_IFINDEX, NET_A, A1)
}

fn assert_frame(what: &str, frame: &[u8], dst_mac: Mac, src_mac: Mac) {
    assert_eq!(
        &frame[..6],
        &dst_mac,
        "{what}: destination MAC\n{}",
        hex(frame)
    );
    assert_eq!(
        &frame[6..12],
        &src_mac,
        "{what}: source MAC\n{}",
        hex(frame)
    );
    assert!(checksums_valid(frame), "{what}: checksums\n{}", hex(frame));
}

#[test]
fn masquerade_out_an_uplink_and_the_reply_back_in() {
    in_uplink_netns(|uplink| {
        let mut dp = nat_world(uplink, a1());
        let syn = tcp(
            gateway_mac(GW_A),
            endpoint_mac(A1),
            (A1, 40000),
            (SERVER, 80),
            SYN,
        );
        let out = dp.test_run(&syn, 1).unwrap();
        assert_eq!(
            out.verdict, TC_ACT_REDIRECT,
            "SNAT: redirected out the uplink"
        );
        let ((src, sport), (dst, dport)) = ends(&out.frame);
        assert_eq!(
            (src, dst, dport),
            (UPLINK_IP, SERVER, 80),
            "SNAT: source is the uplink's address"
        );
        assert!(
            (61000..=65535).contains(&sport),
            "SNAT: port {sport} from the NAT range"
        );
        assert_frame("SNAT", &out.frame, ROUTER_MAC, UPLINK_MAC);
        let flows = dp.nat().flows().unwrap();
        assert_eq!(flows.len(), 1, "one flow: {flows:?}");

        let reply = tcp(
            UPLINK_MAC,
            ROUTER_MAC,
            (SERVER, 80),
            (UPLINK_IP, sport),
            SYN_ACK,
        );
        let back = dp.test_run_uplink(&reply, 1).unwrap();
        assert_eq!(
            back.verdict, TC_ACT_REDIRECT,
            "reply: redirect_peer into the sandbox"
        );
        assert_eq!(
            ends(&back.frame),
            ((SERVER, 80), (A1, 40000)),
            "reply: back to A1:40000"
        );
        assert_frame("reply", &back.frame, endpoint_mac(A1), gateway_mac(GW_A));

        // Path MTU discovery: a router's "fragmentation needed" about the masqueraded SYN.
        let error = icmp_error(
            UPLINK_MAC,
            ROUTER_MAC,
            ROUTER,
            UPLINK_IP,
            (3, 4),
            &out.frame,
        );
        let translated = dp.test_run_uplink(&error, 1).unwrap();
        assert_eq!(
            translated.verdict, TC_ACT_REDIRECT,
            "ICMP error: into the sandbox"
        );
        let f = &translated.frame;
        assert_eq!(
            &f[30..34],
            &A1.octets(),
            "ICMP error: outer destination is A1"
        );
        assert_eq!(&f[54..58], &A1.octets(), "ICMP error: quoted source is A1");
        assert_eq!(
            &f[62..64],
            &40000u16.to_be_bytes(),
            "ICMP error: quoted port is A1's"
        );
        assert_frame("ICMP error", f, endpoint_mac(A1), gateway_mac(GW_A));
    });
}

#[test]
fn masquerade_keeps_a_udp_checksum_of_zero() {
    in_uplink_netns(|uplink| {
        let mut dp = nat_world(uplink, a1());
        let frame = udp(gateway_mac(GW_A), endpoint_mac(A1), A1, SERVER, 18);
        let out = dp.test_run(&frame, 1).unwrap();
        assert_eq!(out.verdict, TC_ACT_REDIRECT);
        assert_eq!(ends(&out.frame).0 .0, UPLINK_IP);
        assert_eq!(&out.frame[40..42], &[0, 0], "UDP checksum 0 (none) stays 0");
        assert!(checksums_valid(&out.frame));
    });
}

/// `frame` with the IPv4 flags/fragment-offset field set to `field` (header checksum fixed).
fn as_fragment(frame: &[u8], id: u16, field: u16) -> Vec<u8> {
    let mut f = frame.to_vec();
    f[18..20].copy_from_slice(&id.to_be_bytes());
    f[20..22].copy_from_slice(&field.to_be_bytes());
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = checksum(&f[14..34]);
    f[24..26].copy_from_slice(&sum.to_be_bytes());
    f
}

/// A datagram in fragments: the first (with the ports) opens the masqueraded flow; a later
/// one (payload only) gets the same addresses and no port rewrite; a later fragment of a
/// datagram whose first fragment was never seen is not translated.
#[test]
fn masquerade_translates_every_fragment_of_a_datagram() {
    const MORE_FRAGMENTS: u16 = 0x2000;
    in_uplink_netns(|uplink| {
        let mut dp = nat_world(uplink, a1());
        let whole = udp(gateway_mac(GW_A), endpoint_mac(A1), A1, SERVER, 40);
        let first = as_fragment(&whole[..14 + 20 + 8 + 16], 7, MORE_FRAGMENTS);
        let out = dp.test_run(&first, 1).unwrap();
        assert_eq!(
            out.verdict, TC_ACT_REDIRECT,
            "first fragment: out the uplink"
        );
        let ((src, sport), _) = ends(&out.frame);
        assert_eq!(src, UPLINK_IP);

        // Offset 24 bytes (3 units), the last fragment: 8 bytes that look like ports.
        let mut later = whole[..14 + 20].to_vec();
        later.extend_from_slice(&[0x9c, 0x40, 0x13, 0x88, 1, 2, 3, 4]);
        later[16..18].copy_from_slice(&28u16.to_be_bytes());
        let later = as_fragment(&later, 7, 3);
        let out_later = dp.test_run(&later, 1).unwrap();
        assert_eq!(
            out_later.verdict, TC_ACT_REDIRECT,
            "later fragment: out the uplink"
        );
        let f = &out_later.frame;
        assert_eq!(
            &f[26..30],
            &UPLINK_IP.octets(),
            "later fragment: same source"
        );
        assert_eq!(&f[30..34], &SERVER.octets());
        assert_eq!(
            &f[34..42],
            &later[34..42],
            "later fragment: payload untouched"
        );
        assert_eq!(checksum(&f[14..34]), 0, "later fragment: IP checksum valid");
        assert_eq!(
            &f[0..12],
            &out.frame[0..12],
            "later fragment: same MACs as the first"
        );
        assert!((61000..=65535).contains(&sport));

        let stray = as_fragment(&later, 8, 3);
        let refused = dp.test_run(&stray, 1).unwrap();
        assert_ne!(
            refused.verdict, TC_ACT_REDIRECT,
            "a later fragment of an unknown datagram is not sent out untranslated"
        );
    });
}

#[test]
fn published_port_from_outside_keeps_the_client_and_replies_leave_by_the_uplink() {
    in_uplink_netns(|uplink| {
        let mut dp = nat_world(uplink, endpoint(TEST_RUN_IFINDEX, NET_A, A2));
        let target = PublishTarget {
            ip: A2.octets(),
            port: 80u16.to_be(),
            _pad: 0,
            ifindex: A2_IFINDEX,
            mac: endpoint_mac(A2),
            gateway_mac: gateway_mac(GW_A),
            gateway_ip: GW_A.octets(),
            net_id: NET_A,
        };
        let published = |host_ip: Ipv4Addr, port: u16| PublishKey {
            host_ip: host_ip.octets(),
            port: port.to_be(),
            proto: 6,
            _pad: 0,
        };
        dp.publish(&[
            (published(Ipv4Addr::UNSPECIFIED, 8080), target),
            (published(Ipv4Addr::LOCALHOST, 9090), target),
        ])
        .unwrap();

        let syn = tcp(
            UPLINK_MAC,
            ROUTER_MAC,
            (CLIENT, 5555),
            (UPLINK_IP, 8080),
            SYN,
        );
        let inbound = dp.test_run_uplink(&syn, 1).unwrap();
        assert_eq!(inbound.verdict, TC_ACT_REDIRECT, "DNAT: into the backend");
        assert_eq!(
            ends(&inbound.frame),
            ((CLIENT, 5555), (A2, 80)),
            "DNAT keeps the client"
        );
        assert_frame("DNAT", &inbound.frame, endpoint_mac(A2), gateway_mac(GW_A));

        // A2 (on the test ifindex) answers; the reply leaves as the published address.
        let reply = tcp(
            gateway_mac(GW_A),
            endpoint_mac(A2),
            (A2, 80),
            (CLIENT, 5555),
            SYN_ACK,
        );
        let out = dp.test_run(&reply, 1).unwrap();
        assert_eq!(out.verdict, TC_ACT_REDIRECT, "reply: out the uplink");
        assert_eq!(ends(&out.frame), ((UPLINK_IP, 8080), (CLIENT, 5555)));
        assert_frame("DNAT reply", &out.frame, ROUTER_MAC, UPLINK_MAC);

        // Untouched: a port published on 127.0.0.1 only, and a mid-stream segment that
        // opens nothing.
        for (what, frame) in [
            (
                "127.0.0.1-only port",
                tcp(
                    UPLINK_MAC,
                    ROUTER_MAC,
                    (CLIENT, 5556),
                    (UPLINK_IP, 9090),
                    SYN,
                ),
            ),
            (
                "ACK without a flow",
                tcp(
                    UPLINK_MAC,
                    ROUTER_MAC,
                    (CLIENT, 5557),
                    (UPLINK_IP, 8080),
                    ACK,
                ),
            ),
        ] {
            let out = dp.test_run_uplink(&frame, 1).unwrap();
            assert_eq!(
                out.verdict, TC_ACT_OK,
                "{what}: passed to the host untouched"
            );
            assert_eq!(out.frame, frame, "{what}: unchanged");
        }
        assert_eq!(
            dp.nat().flows().unwrap().len(),
            1,
            "only the published flow exists"
        );
    });
}

#[test]
fn routed_and_internal_networks_are_not_masqueraded() {
    in_uplink_netns(|uplink| {
        let mut dp = nat_world(uplink, endpoint(TEST_RUN_IFINDEX, NET_D, D1));
        let frame = udp(gateway_mac(GW_D), endpoint_mac(D1), D1, SERVER, 18);
        let out = dp.test_run(&frame, 1).unwrap();
        assert_eq!(out.verdict, TC_ACT_SHOT, "internal: no way out");
        // From outside, straight to a sandbox of a masquerading network: not published.
        let probe = tcp(UPLINK_MAC, ROUTER_MAC, (CLIENT, 5555), (A2, 80), SYN);
        let out = dp.test_run_uplink(&probe, 1).unwrap();
        assert_eq!(
            out.verdict, TC_ACT_SHOT,
            "unpublished sandbox port from outside"
        );
        assert!(dp.nat().flows().unwrap().is_empty());
    });
}
