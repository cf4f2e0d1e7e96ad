//! Anti-spoofing: a sandbox may send only from its own MAC and IPv4. Spoofed traffic is
//! dropped and counted; undoing the spoof restores connectivity.
use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::TestHost;

#[test]
fn spoofed_source_ip_is_dropped_and_counted() {
    let h = TestHost::started();
    h.create_network("net", 1, &[]);
    h.create_network("other", 2, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    let o = h.sandbox("o");
    h.connect("net", &a, &[]);
    let ip_b = h.connect("net", &b, &[]);
    let ip_o = h.connect("other", &o, &[]);
    h.assert_ping(&a, &ip_b, "before spoofing");

    let gw = h.gateway_of("net");
    // (description, source address a adds to its eth0 and sends from, destination).
    // Stealing b's address is tried against the gateway: b's address is local to a then.
    let cases = [
        (
            "unused address of its own subnet",
            h.addr(1, 200),
            ip_b.clone(),
        ),
        ("address of a peer on the same network", ip_b.clone(), gw),
        ("address of another network's sandbox", ip_o, ip_b.clone()),
    ];
    for (what, src, dst) in cases {
        h.must(&[
            "ip",
            "-n",
            &a,
            "addr",
            "add",
            &format!("{src}/32"),
            "dev",
            "eth0",
        ]);
        let before = h.stat("net", "drop", "spoofed-ip");
        let r = h.exec_in(
            &a,
            &[
                "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-I", &src, &dst,
            ],
        );
        let after = h.stat("net", "drop", "spoofed-ip");
        assert!(
            !r.success(),
            "issue: anti-spoofing: ping {dst} from {what} ({src}) must not get through: {r}"
        );
        assert!(
            after > before,
            "contract: spoofing from {what} ({src}) counts `spoofed-ip` drops on net ({before} -> {after}); stats: {:#?}\n{}",
            h.stats(),
            h.log_text()
        );
        h.must(&[
            "ip",
            "-n",
            &a,
            "addr",
            "del",
            &format!("{src}/32"),
            "dev",
            "eth0",
        ]);
        h.assert_ping(
            &a,
            &ip_b,
            &format!("after removing the spoofed address {src}"),
        );
    }
    assert_consistent(&h);
}

#[test]
fn spoofed_source_mac_is_dropped_and_counted() {
    let h = TestHost::started();
    h.create_network("net", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("net", &a, &[]);
    let ip_b = h.connect("net", &b, &[]);
    h.assert_ping(&a, &ip_b, "before spoofing");
    let own_mac = h.endpoint("net", &a).unwrap()["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    let b_mac = h.endpoint("net", &b).unwrap()["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();

    for (what, mac) in [
        ("a made-up MAC", "02:42:de:ad:be:ef".to_string()),
        ("the peer's MAC", b_mac),
    ] {
        h.must(&["ip", "-n", &a, "link", "set", "eth0", "address", &mac]);
        let before = h.stat("net", "drop", "spoofed-mac");
        let r = h.exec_in(
            &a,
            &["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", &ip_b],
        );
        let after = h.stat("net", "drop", "spoofed-mac");
        assert!(
            !r.success(),
            "issue: anti-spoofing: traffic from {what} ({mac}) must not get through: {r}"
        );
        assert!(
            after > before,
            "contract: sending from {what} ({mac}) counts `spoofed-mac` drops ({before} -> {after}); stats: {:#?}\n{}",
            h.stats(),
            h.log_text()
        );
        h.must(&["ip", "-n", &a, "link", "set", "eth0", "address", &own_mac]);
        h.assert_ping(&a, &ip_b, &format!("after restoring the MAC ({what})"));
    }
    assert_consistent(&h);
}
