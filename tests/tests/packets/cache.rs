//! The endpoint caches in front of the hash maps: collisions, evictions and takeovers
//! must never change an answer.

use super::world::*;

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
