//! Isolation: networks cannot reach each other, `enable_icc=false` keeps peers apart but
//! not from the gateway, and `--internal` keeps traffic inside the subnet. Every refusal
//! shows up as a drop counter with its reason.
use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::{stat_in, TestHost};

/// Sum of a drop reason over the given networks.
fn drops(h: &TestHost, nets: &[&str], reason: &str) -> u64 {
    let stats = h.stats();
    nets.iter()
        .map(|n| stat_in(&stats, n, "drop", reason))
        .sum()
}

#[test]
fn networks_are_isolated_from_each_other() {
    let h = TestHost::started();
    h.create_network("left", 1, &[]);
    h.create_network("right", 2, &[]);
    let l1 = h.sandbox("l1");
    let l2 = h.sandbox("l2");
    let r1 = h.sandbox("r1");
    let ip_l1 = h.connect("left", &l1, &[]);
    let ip_l2 = h.connect("left", &l2, &[]);
    let ip_r1 = h.connect("right", &r1, &[]);

    // Sanity: each side works on its own, so the failures below are isolation.
    h.assert_ping(&l2, &ip_l1, "same network");
    h.assert_ping(&r1, &h.gateway_of("right"), "right's own gateway");

    let before = drops(&h, &["left", "right"], "network-isolation");
    h.assert_no_ping(
        &l1,
        &ip_r1,
        "issue: isolation between networks (left -> right)",
    );
    h.assert_no_ping(
        &r1,
        &ip_l2,
        "issue: isolation between networks (right -> left)",
    );
    let after = drops(&h, &["left", "right"], "network-isolation");
    assert!(
        after > before,
        "contract: cross-network packets count as `network-isolation` drops ({before} -> {after}); stats: {:#?}",
        h.stats()
    );
    // Still fine within each network after the attempts.
    h.assert_ping(&l1, &ip_l2, "same network after isolation drops");
    assert_consistent(&h);
}

#[test]
fn icc_disabled_keeps_peers_apart_but_not_from_the_gateway() {
    let h = TestHost::started();
    h.create_network(
        "noicc",
        1,
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    );
    let inspect = h.inspect("noicc");
    assert_eq!(
        inspect["Options"]["com.docker.network.bridge.enable_icc"].as_str(),
        Some("false"),
        "inspect Options must carry the -o value: {inspect}"
    );
    let p1 = h.sandbox("p1");
    let p2 = h.sandbox("p2");
    let ip1 = h.connect("noicc", &p1, &[]);
    let ip2 = h.connect("noicc", &p2, &[]);
    let gw = h.gateway_of("noicc");

    let before = h.stat("noicc", "drop", "icc-disabled");
    h.assert_no_ping(&p1, &ip2, "issue: enable_icc=false (p1 -> p2)");
    h.assert_no_ping(&p2, &ip1, "issue: enable_icc=false (p2 -> p1)");
    let after = h.stat("noicc", "drop", "icc-disabled");
    assert!(
        after > before,
        "contract: `icc-disabled` drops on noicc must grow ({before} -> {after}); stats: {:#?}",
        h.stats()
    );
    h.assert_ping(&p1, &gw, "gateway stays reachable with icc off");
    h.assert_ping(&p2, &gw, "gateway stays reachable with icc off");

    // A normal network next to it is unaffected.
    h.create_network("icc", 2, &[]);
    let q1 = h.sandbox("q1");
    let q2 = h.sandbox("q2");
    h.connect("icc", &q1, &[]);
    let ipq2 = h.connect("icc", &q2, &[]);
    h.assert_ping(&q1, &ipq2, "icc on by default");
    assert_consistent(&h);
}

#[test]
fn internal_network_reaches_nothing_outside_its_subnet() {
    let h = TestHost::started();
    h.create_network("inner", 1, &["--internal"]);
    assert_eq!(h.inspect("inner")["Internal"], true, "inspect Internal");
    h.create_network("outer", 2, &[]);
    let i1 = h.sandbox("i1");
    let i2 = h.sandbox("i2");
    let o1 = h.sandbox("o1");
    h.connect("inner", &i1, &[]);
    let ip_i2 = h.connect("inner", &i2, &[]);
    h.connect("outer", &o1, &[]);
    h.assert_ping(
        &i1,
        &ip_i2,
        "members of an internal network talk to each other",
    );

    let outside = h.gateway_of("outer");
    // An internal network may have no default route; force the packet onto the wire so
    // it is the dataplane that refuses it.
    let gw = h.gateway_of("inner");
    h.must(&[
        "ip",
        "-n",
        &i1,
        "route",
        "replace",
        &format!("{outside}/32"),
        "via",
        &gw,
    ]);
    let before = h.stat("inner", "drop", "internal-network");
    h.assert_no_ping(
        &i1,
        &outside,
        "issue: --internal reaches nothing outside its subnet",
    );
    let after = h.stat("inner", "drop", "internal-network");
    assert!(
        after > before,
        "contract: `internal-network` drops on inner must grow ({before} -> {after}); stats: {:#?}",
        h.stats()
    );
    assert_consistent(&h);
}

/// With forwarding on in the host (Docker turns it on), netd's routes to its sandboxes must
/// not let another network in: a namespace behind an interface that is not netd's (here
/// a second veth, as docker0 would be) reaches no sandbox, while the host itself and the
/// uplink's published ports still do.
#[test]
fn the_host_does_not_forward_foreign_interfaces_into_sandboxes() {
    let mut h = TestHost::new();
    h.add_outside();
    let foreign = h.add_outside();
    h.start_daemon_with_args(&["--uplink", "uplink0"]);
    h.create_network("guarded", 1, &[]);
    let s = h.sandbox("s");
    let ip = h.connect("guarded", &s, &[]);
    let host_ns = h.host_ns.clone();
    h.must(&[
        "ip",
        "netns",
        "exec",
        &host_ns,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    h.must(&[
        "ip",
        "-n",
        &foreign.ns,
        "route",
        "add",
        &h.subnet(1),
        "via",
        &foreign.host_ip,
    ]);
    h.assert_no_ping(
        &foreign.ns,
        &ip,
        "a foreign interface is forwarded into a sandbox",
    );
    assert!(
        drops(&h, &["guarded"], "foreign-interface") > 0,
        "the refusal is counted: {:?}",
        h.stats()
    );
    h.assert_ping(
        &host_ns,
        &ip,
        "the host's own packets still reach the sandbox",
    );
    h.assert_ping(&s, &foreign.host_ip, "the sandbox still reaches the host");
    assert_consistent(&h);
}
