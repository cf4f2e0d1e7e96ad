//! Crash recovery: for every crash point of the contract, the daemon aborts in the middle
//! of an operation; after a restart without the crash point there is no half state: the
//! operation is fully there or fully gone, with no leaked veth, IP, gateway or map entry.
use std::os::unix::process::ExitStatusExt;

use netd_tests::harness::check::{assert_consistent, consistency};
use netd_tests::harness::TestHost;

/// A daemon with one live endpoint (`a` on `base`), which every crash must leave alone,
/// and a /30 network `tiny` whose only free address is `.2`: a leaked IP makes the next
/// connect fail, a freed one makes it get `.2` again.
struct World {
    h: TestHost,
    a: String,
    t: String,
    tiny_ip: String,
}

fn world() -> World {
    let h = TestHost::started();
    h.create_network("base", 1, &[]);
    let a = h.sandbox("a");
    h.connect("base", &a, &[]);
    let tiny = format!("{}/30", h.addr(2, 0));
    h.netd_ok(&["network", "create", "--subnet", &tiny, "tiny"]);
    let t = h.sandbox("t");
    let tiny_ip = h.addr(2, 2);
    World { h, a, t, tiny_ip }
}

/// Restarts the daemon with `NETD_CRASH_AT=point`, runs `op` (which must fail because the
/// daemon aborts), then restarts it normally.
fn crash_during(h: &mut TestHost, point: &str, op: &[&str]) {
    h.stop();
    h.start_daemon_with_env(&[("NETD_CRASH_AT", point)]);
    let r = h.netd_run(op);
    let status = h.wait_daemon_exit();
    assert!(
        !r.success(),
        "contract: with NETD_CRASH_AT={point}, `netd {}` must fail (the daemon aborts): {r}",
        op.join(" ")
    );
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "contract: NETD_CRASH_AT={point} makes the daemon abort(); it ended with {status}\n{}",
        h.log_text()
    );
    assert_eq!(
        r.stderr_lines().len(),
        1,
        "a failed command prints one line: {r}"
    );
    h.start_daemon();
}

/// What must hold after every recovery.
fn assert_recovered(w: &World, point: &str) {
    let h = &w.h;
    assert_consistent(h);
    h.assert_ping(
        &w.a,
        &h.gateway_of("base"),
        &format!("live endpoint still works after a crash at {point}"),
    );
}

/// `t` ends up on `tiny` with its only address, and reaches the gateway.
fn assert_tiny_connect_gets_the_same_ip(w: &World, point: &str) {
    let h = &w.h;
    let r = h.netd_run(&["network", "connect", "tiny", &w.t]);
    assert!(
        r.success(),
        "issue: after a crash at {point} the IP must be free again: connect to the /30 network failed: {r}\n{}",
        h.log_text()
    );
    assert_eq!(
        h.ip_of("tiny", &w.t),
        w.tiny_ip,
        "the same auto IP after recovery"
    );
    h.assert_ping(&w.t, &h.gateway_of("tiny"), "reconnected endpoint works");
    assert_consistent(h);
}

fn connect_crash(point: &str) {
    let mut w = world();
    let t = w.t.clone();
    crash_during(&mut w.h, point, &["network", "connect", "tiny", &t]);
    assert_recovered(&w, point);
    if w.h.endpoint("tiny", &t).is_some() {
        // Rolled forward: it must be complete.
        assert_eq!(w.h.ip_of("tiny", &t), w.tiny_ip);
        w.h.assert_ping(&t, &w.h.gateway_of("tiny"), "rolled-forward connect works");
        w.h.disconnect("tiny", &t);
        assert_consistent(&w.h);
    }
    assert_tiny_connect_gets_the_same_ip(&w, point);
}

#[test]
fn crash_after_veth_during_connect() {
    connect_crash("connect:after-veth");
}

#[test]
fn crash_after_dataplane_during_connect() {
    connect_crash("connect:after-dataplane");
}

#[test]
fn crash_after_dataplane_during_disconnect() {
    let point = "disconnect:after-dataplane";
    let mut w = world();
    let t = w.t.clone();
    w.h.connect("tiny", &t, &[]);
    crash_during(&mut w.h, point, &["network", "disconnect", "tiny", &t]);
    assert_recovered(&w, point);
    if w.h.endpoint("tiny", &t).is_some() {
        // Rolled back: the endpoint must be fully there and working.
        w.h.assert_ping(
            &t,
            &w.h.gateway_of("tiny"),
            "rolled-back disconnect leaves a working endpoint",
        );
        w.h.disconnect("tiny", &t);
        assert_consistent(&w.h);
    }
    assert_tiny_connect_gets_the_same_ip(&w, point);
}

#[test]
fn crash_after_store_during_network_create() {
    let point = "network-create:after-store";
    let mut w = world();
    let subnet = w.h.subnet(3);
    crash_during(
        &mut w.h,
        point,
        &["network", "create", "--subnet", &subnet, "fresh"],
    );
    assert_recovered(&w, point);
    let h = &w.h;
    if !h.network_names().contains(&"fresh".to_string()) {
        // Rolled back: name and subnet are free again.
        let r = h.netd_run(&["network", "create", "--subnet", &subnet, "fresh"]);
        assert!(
            r.success(),
            "issue: after a crash at {point} rolled back, name and subnet must be free: {r}"
        );
    }
    assert_eq!(
        h.inspect("fresh")["IPAM"]["Config"][0]["Subnet"],
        subnet.as_str()
    );
    let s = h.sandbox("s");
    h.connect("fresh", &s, &[]);
    h.assert_ping(
        &s,
        &h.gateway_of("fresh"),
        "network created across a crash works",
    );
    assert_consistent(h);
}

#[test]
fn crash_after_store_during_network_rm() {
    let point = "network-rm:after-store";
    let mut w = world();
    let subnet = w.h.subnet(3);
    w.h.netd_ok(&["network", "create", "--subnet", &subnet, "doomed"]);
    crash_during(&mut w.h, point, &["network", "rm", "doomed"]);
    assert_recovered(&w, point);
    let h = &w.h;
    if h.network_names().contains(&"doomed".to_string()) {
        // Rolled back: it must be complete, and removable now.
        assert!(
            h.gateway_addrs()
                .contains(&format!("{}/32", h.gateway_of("doomed"))),
            "rolled-back network has its gateway on lo"
        );
        assert_eq!(h.netd_ok(&["network", "rm", "doomed"]).trim(), "doomed");
        assert_consistent(h);
    }
    // The subnet and name are free again.
    let r = h.netd_run(&["network", "create", "--subnet", &subnet, "doomed"]);
    assert!(
        r.success(),
        "issue: after a crash at {point}, subnet and name must be free: {r}"
    );
    assert_consistent(h);
}

/// The crash tests are only as good as the leak checks: each kind of leftover they look
/// for must actually be seen.
#[test]
fn leak_checks_see_each_kind_of_leftover() {
    let w = world();
    let h = &w.h;
    consistency(h).expect("a clean world is consistent");
    let ns = h.host_ns.as_str();

    h.must(&[
        "ip",
        "-n",
        ns,
        "link",
        "add",
        "nd0123456789ab",
        "type",
        "veth",
        "peer",
        "name",
        "xleak0",
    ]);
    let r = consistency(h);
    assert!(
        r.as_ref().is_err_and(|e| e.contains("veth")),
        "leaked veth not seen: {r:?}"
    );
    h.must(&["ip", "-n", ns, "link", "del", "nd0123456789ab"]);

    let stray = h.addr(1, 250);
    h.must(&[
        "ip",
        "-n",
        ns,
        "addr",
        "add",
        &format!("{stray}/32"),
        "dev",
        "lo",
        "label",
        "lo:netd",
    ]);
    let r = consistency(h);
    assert!(
        r.as_ref().is_err_and(|e| e.contains("lo:netd")),
        "leaked gateway not seen: {r:?}"
    );
    h.must(&[
        "ip",
        "-n",
        ns,
        "addr",
        "del",
        &format!("{stray}/32"),
        "dev",
        "lo",
    ]);

    let ip: std::net::Ipv4Addr = h.addr(1, 251).parse().unwrap();
    let maps = h.maps();
    let any = *maps.endpoints_by_ip().values().next().expect("a's entry");
    maps.insert_endpoint_by_ip(ip, any);
    let r = consistency(h);
    assert!(
        r.as_ref().is_err_and(|e| e.contains("EP_BY_IP")),
        "leaked map entry not seen: {r:?}"
    );
    maps.remove_endpoint_by_ip(ip);

    h.must(&[
        "ip", "-n", &w.t, "link", "add", "eth7", "type", "veth", "peer", "name", "xleak7",
    ]);
    h.must(&[
        "ip",
        "-n",
        &w.t,
        "addr",
        "add",
        "192.0.2.7/32",
        "dev",
        "eth7",
    ]);
    let r = consistency(h);
    assert!(
        r.as_ref().is_err_and(|e| e.contains("sandbox")),
        "leaked sandbox interface not seen: {r:?}"
    );
    h.must(&["ip", "-n", &w.t, "link", "del", "eth7"]);
    consistency(h).expect("consistent again after undoing every leak");
}
