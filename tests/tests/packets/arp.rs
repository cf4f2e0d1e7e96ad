//! ARP: the gateway answered in place, peers reached, isolation and anti-spoofing.

use super::world::*;

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

#[test]
fn arp_table() {
    for case in arp_cases() {
        run_case(&case);
    }
}
