//! "netd works unchanged on a host where Docker runs": FORWARD's policy is DROP and
//! conntrack is active there. Both are set up inside the test's own host namespace (never
//! on the machine), then masquerading and a published port must work as on a bare host,
//! and netd must add no rule of its own.
use std::time::Duration;

use netd_tests::harness::netns::{ask, EchoServer, Proto};
use netd_tests::harness::{firewall_rules, run, TestHost};

const T: Duration = Duration::from_secs(3);

#[test]
fn forward_drop_and_conntrack_do_not_stop_nat_or_publishing() {
    let mut h = TestHost::new();
    let o = h.add_outside();
    // Docker's state: FORWARD drops by default, and a conntrack match makes netfilter
    // track every packet of this namespace.
    for rule in [
        vec!["-P", "FORWARD", "DROP"],
        vec![
            "-A",
            "FORWARD",
            "-m",
            "conntrack",
            "--ctstate",
            "INVALID",
            "-j",
            "DROP",
        ],
    ] {
        let mut args = vec!["netns", "exec", h.host_ns.as_str(), "iptables"];
        args.extend(rule);
        let r = run("ip", &args);
        assert!(
            r.success(),
            "setting up Docker's firewall state in the test namespace: {r}"
        );
    }
    let rules_before = firewall_rules(&h.host_ns);
    h.start_daemon_with_args(&["--uplink", &o.uplink]);
    h.create_network("web", 1, &[]);
    let a = h.sandbox("a");
    h.connect("web", &a, &["-p", "8080:80/tcp", "-p", "5353:53/udp"]);
    let _tcp = EchoServer::start(&a, Proto::Tcp, "0.0.0.0:80");
    let _udp = EchoServer::start(&a, Proto::Udp, "0.0.0.0:53");
    let out_tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let out_udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));

    for (proto, server) in [(Proto::Tcp, &out_tcp), (Proto::Udp, &out_udp)] {
        let r = ask(proto, &a, &o.ip, server.port(), T).unwrap_or_else(|e| {
            panic!(
                "issue: with FORWARD DROP, {} egress still works: {e}",
                proto.name()
            )
        });
        assert_eq!(
            r.seen_from, o.host_ip,
            "masqueraded to the uplink address: {r:?}"
        );
    }
    for (proto, port) in [(Proto::Tcp, 8080), (Proto::Udp, 5353)] {
        let r = ask(proto, &o.ns, &o.host_ip, port, T).unwrap_or_else(|e| {
            panic!(
                "issue: with FORWARD DROP, a published {} port works: {e}",
                proto.name()
            )
        });
        assert_eq!(
            r.seen_from, o.ip,
            "the client's address is preserved: {r:?}"
        );
    }
    assert_eq!(
        firewall_rules(&h.host_ns),
        rules_before,
        "issue: netd adds no iptables or nftables rule"
    );
}
