//! "Must not lose anything": forwarding goes on while the daemon is down (maps are pinned,
//! tc filters live on the devices), and a restarted daemon serves the same `ls`/`inspect` and reconciles the
//! kernel with its state.
use std::time::Duration;

use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::{Background, TestHost};
use serde_json::{json, Value};

/// Packets in the run of [`flood_ping`].
const PINGS: u32 = 300;

/// `ping -i 0.02 -c 300` from `from` to `ip` in the background (6 s of traffic).
fn flood_ping(from: &str, ip: &str) -> Background {
    let count = PINGS.to_string();
    Background::spawn(
        "ip",
        &[
            "netns", "exec", from, "ping", "-n", "-q", "-c", &count, "-i", "0.02", "-W", "1", ip,
        ],
        Duration::from_secs(30),
    )
}

/// What `ls` and `inspect` show; must be identical across restarts.
fn views(h: &TestHost) -> Value {
    json!({ "ls": h.ls_json(), "inspect": h.inspect_all(), "sandboxes": h.sandboxes() })
}

fn assert_same_views(before: &Value, after: &Value, when: &str) {
    assert!(
        before == after,
        "issue: a restarted daemon serves the same ls/inspect ({when})\n--- before ---\n{}\n--- after ---\n{}",
        serde_json::to_string_pretty(before).unwrap(),
        serde_json::to_string_pretty(after).unwrap()
    );
}

/// Runs the background ping across `down` (which stops and restarts the daemon) and
/// asserts at most one packet was lost.
fn traffic_survives(h: &mut TestHost, down: impl FnOnce(&mut TestHost)) {
    h.create_network("net", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("net", &a, &[]);
    let ip_b = h.connect("net", &b, &[]);
    h.assert_ping(&a, &ip_b, "before the restart");
    let before = views(h);

    let ping = flood_ping(&a, &ip_b);
    std::thread::sleep(Duration::from_millis(1000));
    down(h);
    let r = ping.finish();
    let (tx, rx) = r.ping_counts();
    assert!(
        tx == PINGS && tx - rx <= 1,
        "issue: forwarding goes on while the daemon is down: {tx} sent, {rx} received (at most 1 lost allowed)\n{r}\n{}",
        h.log_text()
    );
    assert_same_views(&before, &views(h), "after the restart");
    assert_consistent(h);

    // And the restarted daemon keeps working.
    let c = h.sandbox("c");
    let ip_c = h.connect("net", &c, &[]);
    h.assert_ping(&c, &ip_b, "new sandbox after the restart");
    h.assert_ping(&a, &ip_c, "old sandbox -> new one");
    assert_consistent(h);
}

#[test]
fn kill9_under_traffic_loses_at_most_one_packet() {
    let mut h = TestHost::started();
    traffic_survives(&mut h, |h| {
        h.kill9();
        std::thread::sleep(Duration::from_millis(1500));
        h.start_daemon();
    });
}

#[test]
fn sigterm_restart_under_traffic_loses_at_most_one_packet() {
    let mut h = TestHost::started();
    traffic_survives(&mut h, |h| {
        h.stop();
        std::thread::sleep(Duration::from_millis(1500));
        h.start_daemon();
    });
}

#[test]
fn restarts_preserve_every_kind_of_state() {
    let mut h = TestHost::started();
    let range = format!("{}/28", h.addr(1, 16));
    h.create_network(
        "full",
        1,
        &[
            "--gateway",
            &h.addr(1, 254),
            "--ip-range",
            &range,
            "--aux-address",
            &format!("reserved={}", h.addr(1, 17)),
            "--mtu",
            "1400",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
        ],
    );
    h.create_network("inner", 2, &["--internal"]);
    h.create_network("empty", 3, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.sandbox("idle");
    h.connect("full", &a, &[]);
    h.connect("inner", &a, &[]);
    h.connect("full", &b, &["--ip", &h.addr(1, 20), "--alias", "bee"]);
    h.connect("bridge", &b, &[]);
    let before = views(&h);
    assert_consistent(&h);

    h.kill9();
    h.start_daemon();
    assert_same_views(&before, &views(&h), "after kill -9");
    assert_consistent(&h);
    h.restart();
    assert_same_views(&before, &views(&h), "after SIGTERM + start");
    assert_consistent(&h);

    // IPAM state survived: a new endpoint gets none of the addresses in use or reserved.
    let c = h.sandbox("c");
    let ip_c = h.connect("full", &c, &[]);
    let taken = [
        h.ip_of("full", &a),
        h.addr(1, 20),
        h.addr(1, 17),
        h.addr(1, 254),
    ];
    assert!(
        !taken.contains(&ip_c),
        "new endpoint got {ip_c}, which is in use or reserved ({taken:?})"
    );
    h.assert_ping(&c, &h.gateway_of("full"), "new endpoint after restarts");
    // Removal still works after restarts.
    h.disconnect("full", &c);
    h.netd_ok(&["network", "rm", "empty"]);
    assert_consistent(&h);
}

#[test]
fn restart_reconciles_what_changed_while_down() {
    let mut h = TestHost::started();
    h.create_network("net", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("net", &a, &[]);
    let ip_b = h.connect("net", &b, &[]);
    let gw = h.gateway_of("net");
    h.kill9();

    // While down: the gateway address disappears from lo, and b's netns is deleted
    // (which destroys its veth pair).
    h.must(&[
        "ip",
        "-n",
        &h.host_ns,
        "addr",
        "del",
        &format!("{gw}/32"),
        "dev",
        "lo",
    ]);
    h.must(&["ip", "netns", "delete", &b]);
    h.start_daemon();

    assert!(
        h.gateway_addrs().contains(&format!("{gw}/32")),
        "issue: restart reconciles addresses: gateway {gw} must be back on lo: {:?}",
        h.gateway_addrs()
    );
    h.assert_ping(&a, &gw, "gateway answers again after reconcile");
    assert!(
        h.endpoint("net", &b).is_none(),
        "issue: restart reconciles veths: b's netns is gone, its endpoint must go too: {}",
        h.inspect("net")
    );
    assert!(
        !h.maps()
            .endpoints_by_ip()
            .contains_key(&ip_b.parse().unwrap()),
        "issue: no leaked map entry for vanished endpoint {ip_b}"
    );
    let c = h.sandbox("c");
    h.connect("net", &c, &["--ip", &ip_b]);
    h.assert_ping(&a, &ip_b, "the freed address is usable again");
}
