//! Egress through the uplink (issue 4): a sandbox reaches an "outside" namespace behind
//! the daemon's `--uplink` with TCP, UDP and ICMP echo, masqueraded to the uplink's
//! address (each uplink its own when there are two); without SNAT when masquerade is off;
//! not at all from an internal network. Refusals and fragmented datagrams come back
//! through the translation; the host's own traffic over the uplink is left alone.
//! Established flows survive `kill -9` (and SIGTERM) of the daemon, and the LRU NAT table
//! keeps working when it overflows.
//!
//! The outside namespace knows only 10.<o>.250.0/24: an answer can only come back to a
//! sandbox if netd translated its address (or the test added a route back).
use std::time::Duration;

use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::netns::{
    hold_tcp_listener, hold_udp_socket, in_netns, tcp_ask, tcp_ask_from, udp_ask, udp_ask_from,
    udp_ask_sized, udp_spray, EchoServer, IcmpWatch, Proto, TcpSession,
};
use netd_tests::harness::outside::{ct_entries, ip_part, CtEntry};
use netd_tests::harness::{firewall_rules, run, wait_until, Outside, TestHost};

/// Per-step deadline of a client exchange.
const T: Duration = Duration::from_secs(3);
/// Deadline of an exchange that must fail.
const T_FAIL: Duration = Duration::from_millis(1500);

fn sysctl_in(ns: &str, key: &str) -> String {
    let r = run("ip", &["netns", "exec", ns, "sysctl", "-n", key]);
    assert!(r.success(), "{r}");
    r.stdout.trim().to_string()
}

/// Panics with the conntrack table and the daemon log unless a row satisfies `pred`.
fn assert_ct(h: &TestHost, what: &str, pred: impl Fn(&CtEntry) -> bool) {
    let ct = h.conntrack();
    let rows = ct_entries(&ct);
    assert!(
        rows.iter().any(pred),
        "{what}; `netd conntrack ls --format json`:\n{}\n{}",
        serde_json::to_string_pretty(&ct).unwrap_or_default(),
        h.log_text()
    );
}

fn expect<T>(h: &TestHost, what: &str, r: Result<T, String>, diag_ns: &[&str]) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}\n{}\n{}", h.diagnostics(diag_ns), h.log_text()))
}

/// TCP, UDP and ping between the host netns and the outside, both ways.
fn host_and_outside_talk(h: &TestHost, o: &Outside, when: &str) {
    let out_tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let out_udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));
    let host_tcp = EchoServer::start(&h.host_ns, Proto::Tcp, &format!("{}:0", o.host_ip));
    let host_udp = EchoServer::start(&h.host_ns, Proto::Udp, &format!("{}:0", o.host_ip));
    for (what, r, want) in [
        (
            "host -> outside TCP",
            tcp_ask(&h.host_ns, &o.ip, out_tcp.port(), T),
            &o.host_ip,
        ),
        (
            "host -> outside UDP",
            udp_ask(&h.host_ns, &o.ip, out_udp.port(), T),
            &o.host_ip,
        ),
        (
            "outside -> host TCP",
            tcp_ask(&o.ns, &o.host_ip, host_tcp.port(), T),
            &o.ip,
        ),
        (
            "outside -> host UDP",
            udp_ask(&o.ns, &o.host_ip, host_udp.port(), T),
            &o.ip,
        ),
    ] {
        let r = expect(h, &format!("{what} ({when})"), r, &[&o.ns]);
        assert_eq!(&r.seen_from, want, "{what} ({when}): {r:?}");
    }
    let watch = IcmpWatch::start(&o.ns);
    h.assert_ping(&h.host_ns, &o.ip, &format!("host -> outside ({when})"));
    let srcs = watch.sources();
    assert!(
        !srcs.is_empty() && srcs.iter().all(|s| s.to_string() == o.host_ip),
        "host -> outside echo requests come from {} ({when}): {srcs:?}",
        o.host_ip
    );
    h.assert_ping(&o.ns, &o.host_ip, &format!("outside -> host ({when})"));
}

/// The harness's outside namespace works, and the host's own traffic over the uplink is
/// untouched by the programs netd puts on it.
#[test]
fn host_traffic_over_the_uplink_is_unaffected() {
    let mut h = TestHost::new();
    let o = h.add_outside();
    host_and_outside_talk(&h, &o, "before the daemon");
    h.start_daemon_with_args(&["--uplink", &o.uplink]);
    h.create_network("egress", 1, &[]);
    let a = h.sandbox("a");
    h.connect("egress", &a, &["-p", "8080:80"]);
    host_and_outside_talk(&h, &o, "daemon running with --uplink and a published port");
    // A sandbox reaching a service on the host's uplink address is local traffic, not
    // egress: it arrives unchanged (like Docker), from the sandbox's own address.
    let ip_a = h.ip_of("egress", &a);
    let svc = EchoServer::start(&h.host_ns, Proto::Tcp, &format!("{}:0", o.host_ip));
    let r = expect(
        &h,
        "a sandbox reaches a host service on the uplink address",
        tcp_ask(&a, &o.host_ip, svc.port(), T),
        &[&a],
    );
    assert_eq!(
        r.seen_from, ip_a,
        "contract: only traffic whose route goes out an uplink is masqueraded; to the host itself the source stays the sandbox's: {r:?}"
    );
}

#[test]
fn masquerade_tcp_udp_and_icmp_to_the_outside() {
    let mut h = TestHost::new();
    let o: Outside = h.add_outside();
    let rules_before = firewall_rules(&h.host_ns);
    h.start_daemon_with_args(&["--uplink", &o.uplink]);
    h.create_network("egress", 1, &[]);
    let a = h.sandbox("a");
    let ip_a = h.connect("egress", &a, &[]);
    let tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));

    // TCP, kept open so its conntrack entry is live when listed.
    let mut s = expect(
        &h,
        "issue: a sandbox reaches the outside over TCP",
        TcpSession::open(&a, &o.ip, tcp.port(), T),
        &[&a, &o.ns],
    );
    let r = expect(&h, "TCP exchange to the outside", s.ask("ping"), &[&a]);
    assert_eq!(
        r.seen_from, o.host_ip,
        "issue: egress is SNATed to the uplink's first address: the outside server saw {} ({r:?})",
        r.seen_from
    );
    let tcp_sport = r
        .text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        (61000..=65535).contains(&r.seen_port),
        "README: masquerading takes source ports 61000-65535; the outside saw {tcp_sport}"
    );

    let u = expect(
        &h,
        "issue: a sandbox reaches the outside over UDP",
        udp_ask(&a, &o.ip, udp.port(), T),
        &[&a, &o.ns],
    );
    assert_eq!(
        u.seen_from, o.host_ip,
        "issue: UDP egress is SNATed to the uplink's address: {u:?}"
    );
    assert!(
        (61000..=65535).contains(&u.seen_port),
        "README: masquerading takes source ports 61000-65535; UDP: {u:?}"
    );
    assert_eq!(
        u.peer, udp.addr,
        "the answer reaches the sandbox from the server's own address (reverse translation): {u:?}"
    );

    let watch = IcmpWatch::start(&o.ns);
    h.assert_ping(
        &a,
        &o.ip,
        "issue: ICMP echo from a sandbox to the outside is masqueraded (the outside has no route back to the sandbox)",
    );
    let srcs = watch.sources();
    assert!(
        !srcs.is_empty() && srcs.iter().all(|s| s.to_string() == o.host_ip),
        "issue: echo requests reach the outside from the uplink's address {}, saw sources {srcs:?}",
        o.host_ip
    );

    let tcp_dst = format!("{}:{}", o.ip, tcp.port());
    let udp_dst = format!("{}:{}", o.ip, udp.port());
    let snat_of = |proto: &'static str, dst: Option<String>| {
        let ip_a = ip_a.clone();
        let host_ip = o.host_ip.clone();
        let o_ip = o.ip.clone();
        move |e: &CtEntry| {
            e.proto == proto
                && e.kind == "snat"
                && ip_part(&e.orig_src) == ip_a
                && dst
                    .as_ref()
                    .map_or(ip_part(&e.orig_dst) == o_ip, |d| &e.orig_dst == d)
                && ip_part(&e.trans_src) == host_ip
        }
    };
    assert_ct(
        &h,
        &format!("contract: `conntrack ls` shows the TCP flow {ip_a} -> {tcp_dst} as snat to {} (server saw {tcp_sport})", o.host_ip),
        snat_of("tcp", Some(tcp_dst.clone())),
    );
    assert_ct(
        &h,
        &format!("contract: `conntrack ls` shows the UDP flow {ip_a} -> {udp_dst} as snat"),
        snat_of("udp", Some(udp_dst)),
    );
    assert_ct(
        &h,
        &format!(
            "contract: `conntrack ls` shows the ICMP echo {ip_a} -> {} as snat",
            o.ip
        ),
        snat_of("icmp", None),
    );
    let created = h
        .stats()
        .iter()
        .filter(|e| e["Kind"] == "nat" && e["Reason"] == "created")
        .filter_map(|e| e["Packets"].as_u64())
        .sum::<u64>();
    assert!(
        created >= 3,
        "contract: `netd stats` counts created NAT entries: {created} after a TCP, a UDP and an ICMP flow: {:#?}",
        h.stats()
    );
    // The session still works after all that.
    expect(&h, "TCP session keeps working", s.ask("again"), &[&a]);

    assert_eq!(
        sysctl_in(&h.host_ns, "net.ipv4.ip_forward"),
        "0",
        "contract: egress needs no ip_forward (netd must not turn it on)"
    );
    assert_eq!(
        rules_before,
        firewall_rules(&h.host_ns),
        "contract: egress needs no iptables: iptables-save / nft list ruleset must be unchanged"
    );
    assert_consistent(&h);
}

#[test]
fn masquerade_off_routes_with_the_sandbox_address() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network(
        "routed",
        2,
        &["-o", "com.docker.network.bridge.enable_ip_masquerade=false"],
    );
    let b = h.sandbox("b");
    let ip_b = h.connect("routed", &b, &[]);
    h.route_back_from_outside(&h.subnet(2));
    let tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));

    let r = expect(
        &h,
        "contract: masquerade=false still routes to the outside (TCP)",
        tcp_ask(&b, &o.ip, tcp.port(), T),
        &[&b, &o.ns],
    );
    assert_eq!(
        r.seen_from, ip_b,
        "contract: enable_ip_masquerade=false routes without SNAT: the outside must see the sandbox's own address: {r:?}"
    );
    let u = expect(
        &h,
        "contract: masquerade=false still routes to the outside (UDP)",
        udp_ask(&b, &o.ip, udp.port(), T),
        &[&b, &o.ns],
    );
    assert_eq!(
        u.seen_from, ip_b,
        "contract: enable_ip_masquerade=false: the outside sees the sandbox's address over UDP: {u:?}"
    );
    let watch = IcmpWatch::start(&o.ns);
    h.assert_ping(&b, &o.ip, "contract: masquerade=false routes ICMP echo");
    let srcs = watch.sources();
    assert!(
        !srcs.is_empty() && srcs.iter().all(|s| s.to_string() == ip_b),
        "contract: masquerade=false: echo requests come from the sandbox's address {ip_b}, saw {srcs:?}"
    );
    let ct = ct_entries(&h.conntrack());
    assert!(
        !ct.iter().any(|e| e.kind == "snat" && e.mentions(&ip_b)),
        "contract: no snat entry for a sandbox on a masquerade=false network: {ct:#?}"
    );
    assert_consistent(&h);
}

#[test]
fn internal_network_has_no_way_out_and_refuses_publishing() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("inner", 3, &["--internal"]);
    let i = h.sandbox("i");
    let ip_i = h.connect("inner", &i, &[]);
    // If anything leaked out, the outside could answer it: nothing may arrive at all.
    h.route_back_from_outside(&h.subnet(3));
    let gw = h.gateway_of("inner");
    h.must(&["ip", "-n", &i, "route", "replace", "default", "via", &gw]);
    let tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));
    let watch = IcmpWatch::start(&o.ns);

    let t = tcp_ask(&i, &o.ip, tcp.port(), T_FAIL);
    let u = udp_ask(&i, &o.ip, udp.port(), T_FAIL);
    let pinged = h.ping(&i, &o.ip);
    let icmp_seen = watch.sources();
    assert!(
        t.is_err() && u.is_err() && !pinged,
        "issue: an --internal network reaches nothing outside its subnet: tcp {t:?}, udp {u:?}, ping ok: {pinged}"
    );
    assert!(
        tcp.hits() == 0 && udp.hits() == 0 && icmp_seen.is_empty(),
        "issue: nothing from {ip_i} on an --internal network may reach the outside: tcp connections {}, udp datagrams {}, echo requests from {icmp_seen:?}",
        tcp.hits(),
        udp.hits()
    );

    // Not even through a port published by a sandbox of another network (hairpin).
    h.create_network("web", 4, &[]);
    let w = h.sandbox("w");
    h.connect("web", &w, &["-p", "8080:80"]);
    let backend = EchoServer::start(&w, Proto::Tcp, "0.0.0.0:80");
    let hp = tcp_ask(&i, &o.host_ip, 8080, T_FAIL);
    assert!(
        hp.is_err() && backend.hits() == 0,
        "issue: an --internal network reaches nothing outside its subnet, published ports on the host's address included: {hp:?}, backend hits {}",
        backend.hits()
    );

    let j = h.sandbox("j");
    h.netd_refused(
        &["network", "connect", "-p", "8080:80", "inner", &j],
        "contract: -p on an --internal network is refused",
    );
    assert!(
        h.endpoint("inner", &j).is_none(),
        "contract: a refused connect changes nothing, yet {j} is on inner: {}",
        h.inspect("inner")
    );
    let ports = h.port_ls_json(None);
    assert!(
        ports.len() == 1 && ports[0]["Sandbox"].as_str() == Some(w.as_str()),
        "contract: a refused -p publishes nothing (only w's 8080 may be listed): {ports:?}"
    );
    assert_consistent(&h);
}

/// One long-lived TCP connection in through a published port and one masqueraded out
/// keep exchanging data after `kill -9` and a restart of the daemon.
#[test]
fn established_nat_flows_survive_kill9_and_restart() {
    flows_survive(|h| h.kill9());
}

/// The same across a graceful stop (SIGTERM) and a start.
#[test]
fn established_nat_flows_survive_sigterm_and_restart() {
    flows_survive(|h| {
        h.stop();
    });
}

fn flows_survive(down: impl FnOnce(&mut TestHost)) {
    let (mut h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    let ip_b = h.connect("web", &b, &["-p", "8080:80/tcp"]);
    let _inside = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let outside = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));

    let mut inbound = expect(
        &h,
        "contract: a published port is reachable from the outside",
        TcpSession::open(&o.ns, &o.host_ip, 8080, T),
        &[&b, &o.ns],
    );
    let mut outbound = expect(
        &h,
        "issue: a sandbox reaches the outside",
        TcpSession::open(&b, &o.ip, outside.port(), T),
        &[&b, &o.ns],
    );
    let check = |h: &TestHost, inbound: &mut TcpSession, outbound: &mut TcpSession, when: &str| {
        let r = expect(
            h,
            &format!("inbound (outside -> {ip_b}:80 via :8080) {when}"),
            inbound.ask(when),
            &[&b],
        );
        assert_eq!(
            r.seen_from, o.ip,
            "contract: client address preserved through the published port ({when}): {r:?}"
        );
        let r = expect(
            h,
            &format!("outbound masqueraded ({ip_b} -> outside) {when}"),
            outbound.ask(when),
            &[&b],
        );
        assert_eq!(
            r.seen_from, o.host_ip,
            "issue: egress SNAT to the uplink address ({when}): {r:?}"
        );
    };
    check(&h, &mut inbound, &mut outbound, "before");
    let ports_before = h.port_ls_json(None);

    down(&mut h);
    std::thread::sleep(Duration::from_millis(1000));
    h.start_daemon();
    assert_eq!(
        h.daemon_args(),
        ["--uplink".to_string(), o.uplink.clone()],
        "harness: a restart reuses the daemon's arguments"
    );
    assert_eq!(
        ports_before,
        h.port_ls_json(None),
        "a restarted daemon lists the same published ports"
    );
    for n in 0..5 {
        check(
            &h,
            &mut inbound,
            &mut outbound,
            &format!("after-restart-{n}"),
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // New flows after the restart work too.
    let r = expect(
        &h,
        "a new inbound connection after the restart",
        tcp_ask(&o.ns, &o.host_ip, 8080, T),
        &[&b],
    );
    assert_eq!(r.seen_from, o.ip, "{r:?}");
    let r = expect(
        &h,
        "the host netns reaches 127.0.0.1:8080 after the restart (socket hooks replaced)",
        tcp_ask(&h.host_ns, "127.0.0.1", 8080, T),
        &[&b],
    );
    assert_eq!(r.peer.to_string(), "127.0.0.1:8080", "{r:?}");
    let mut fresh = expect(
        &h,
        "a new masqueraded connection after the restart",
        TcpSession::open(&b, &o.ip, outside.port(), T),
        &[&b],
    );
    let r = expect(&h, "new egress exchange", fresh.ask("fresh"), &[&b]);
    assert_eq!(r.seen_from, o.host_ip, "{r:?}");
    assert_consistent(&h);
}

/// `--nat-max-entries 64` and far more UDP flows than that: the table evicts (and says so
/// in `stats`), and a new flow still works.
#[test]
fn lru_nat_table_under_pressure_keeps_new_flows_working() {
    const FLOWS: usize = 300;
    let (h, o) = TestHost::with_uplink(&["--nat-max-entries", "64"]);
    h.create_network("busy", 1, &[]);
    let a = h.sandbox("a");
    h.connect("busy", &a, &[]);
    let udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));
    let tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));

    let sent = expect(
        &h,
        "sending one datagram on each of many flows",
        udp_spray(&a, &o.ip, udp.port(), FLOWS),
        &[&a],
    );
    assert_eq!(sent, FLOWS);
    // More flows than the table holds must have gone out.
    let arrived = wait_until(
        Duration::from_secs(5),
        "datagrams of the flows to arrive",
        || (udp.hits() > 64).then(|| udp.hits()),
    );
    assert!(arrived <= FLOWS, "{arrived} datagrams from {FLOWS} flows");

    let u = expect(
        &h,
        "contract: the NAT table is an LRU: a new UDP flow works when it is full",
        udp_ask(&a, &o.ip, udp.port(), T),
        &[&a],
    );
    assert_eq!(u.seen_from, o.host_ip, "{u:?}");
    let t = expect(
        &h,
        "contract: the NAT table is an LRU: a new TCP flow works when it is full",
        tcp_ask(&a, &o.ip, tcp.port(), T),
        &[&a],
    );
    assert_eq!(t.seen_from, o.host_ip, "{t:?}");

    let evictions = h.nat_evictions();
    assert!(
        evictions > 0,
        "contract: `netd stats` reports LRU evictions after {FLOWS} flows into a 64-entry table, got {evictions}: {:#?}",
        h.stats()
    );
    let ct = h.conntrack();
    assert!(
        ct.len() <= 64,
        "contract: --nat-max-entries 64 bounds the table, `conntrack ls` lists {} rows",
        ct.len()
    );
}

/// `--uplink` is repeatable: egress leaves by the uplink its route takes, masqueraded to
/// that uplink's own address, and a published port answers on every uplink, its replies
/// leaving by the uplink they came in on.
#[test]
fn two_uplinks_each_masquerade_to_their_own_address_and_publish() {
    let mut h = TestHost::new();
    let o1 = h.add_outside();
    let o2 = h.add_outside();
    h.start_daemon_with_args(&["--uplink", &o1.uplink, "--uplink", &o2.uplink]);
    h.create_network("web", 1, &[]);
    let a = h.sandbox("a");
    h.connect("web", &a, &["-p", "8080:80"]);
    let _inside = EchoServer::start(&a, Proto::Tcp, "0.0.0.0:80");
    let mut failures = Vec::new();
    for o in [&o1, &o2] {
        let out = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
        match tcp_ask(&a, &o.ip, out.port(), T) {
            Ok(r) if r.seen_from == o.host_ip => {}
            other => failures.push(format!(
                "contract: egress to {} leaves by {} masqueraded to {}: {other:?}",
                o.ip, o.uplink, o.host_ip
            )),
        }
        match tcp_ask(&o.ns, &o.host_ip, 8080, T) {
            Ok(r) if r.seen_from == o.ip => {}
            other => failures.push(format!(
                "contract: the published port answers on {} ({}:8080) with the client address preserved: {other:?}",
                o.uplink, o.host_ip
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "two uplinks:\n{}\nconntrack: {}\n{}\n{}",
        failures.join("\n"),
        serde_json::to_string_pretty(&h.conntrack()).unwrap_or_default(),
        h.diagnostics(&[&a, &o1.ns, &o2.ns]),
        h.log_text()
    );
}

/// Errors travel back through the translation too: a closed TCP port of the outside
/// refuses a masqueraded connect (RST), and a closed UDP port's ICMP port-unreachable
/// reaches the sandbox's connected socket as ECONNREFUSED, instead of silence.
#[test]
fn refusals_from_the_outside_reach_the_masqueraded_sandbox() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("egress", 1, &[]);
    let a = h.sandbox("a");
    h.connect("egress", &a, &[]);
    // Ports nobody listens on in the outside: bind and drop to learn free ones.
    let closed_tcp = hold_tcp_listener(&o.ns, &format!("{}:0", o.ip))
        .local_addr()
        .unwrap();
    let closed_udp = hold_udp_socket(&o.ns, &format!("{}:0", o.ip))
        .local_addr()
        .unwrap();
    let r = in_netns(&a, Duration::from_secs(10), move || {
        let tcp = std::net::TcpStream::connect_timeout(&closed_tcp, Duration::from_secs(3));
        let tcp = match tcp {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => Err(format!("TCP connect to closed {closed_tcp}: {other:?}")),
        };
        let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
        s.connect(closed_udp).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .map_err(|e| e.to_string())?;
        let mut udp = Err(format!("UDP to closed {closed_udp}: no ECONNREFUSED"));
        let mut buf = [0u8; 64];
        for _ in 0..3 {
            let _ = s.send(b"ping");
            match s.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    udp = Ok(());
                    break;
                }
                other => udp = Err(format!("UDP to closed {closed_udp}: {other:?}")),
            }
        }
        Ok((tcp, udp))
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        r.0.is_ok() && r.1.is_ok(),
        "refusals from the outside must reach the masqueraded sandbox: tcp {:?}, udp {:?}\n{}",
        r.0,
        r.1,
        h.log_text()
    );
}

/// The host's own connections keep working when their source port happens to be a
/// published port: the host kernel picks ephemeral ports from 32768-60999, which contains
/// the auto-publishing range 49153-60999, and nothing tells it netd holds a port. A reply
/// to the host's connection must reach the host, not be translated into the sandbox.
#[test]
fn host_connections_from_a_published_port_number_are_not_hijacked() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    h.connect("web", &b, &["-p", "50001:80/tcp", "-p", "50002:53/udp"]);
    let in_tcp = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let in_udp = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");
    let out_tcp = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let out_udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));
    let t = tcp_ask_from(&h.host_ns, 50001, &o.ip, out_tcp.port(), T);
    let u = udp_ask_from(&h.host_ns, 50002, &o.ip, out_udp.port(), T);
    assert!(
        t.as_ref().is_ok_and(|r| r.seen_from == o.host_ip)
            && u.as_ref().is_ok_and(|r| r.seen_from == o.host_ip),
        "a host connection from port 50001/tcp or 50002/udp (published by netd) to the outside must work:\n tcp {t:?}\n udp {u:?}\n backend hits: tcp {}, udp {}\nconntrack: {}\n{}",
        in_tcp.hits(),
        in_udp.hits(),
        serde_json::to_string_pretty(&h.conntrack()).unwrap_or_default(),
        h.log_text()
    );
    // And the published ports still work from outside.
    let r = tcp_ask(&o.ns, &o.host_ip, 50001, T);
    assert!(
        r.as_ref().is_ok_and(|r| r.seen_from == o.ip),
        "published 50001 from outside: {r:?}"
    );
}

/// UDP datagrams larger than the MTU travel as IP fragments; only the first carries the
/// ports (later ones find the flow in FRAGMENTS). A masqueraded (egress) and a published
/// (inbound) UDP exchange of 3000 bytes each way must work, as through Docker's kernel NAT.
#[test]
fn fragmented_udp_is_translated_both_ways() {
    const SIZE: usize = 3000;
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    h.connect("web", &b, &["-p", "5353:53/udp"]);
    let _inside = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");
    let out = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));
    let egress = udp_ask_sized(&b, &o.ip, out.port(), SIZE, T);
    let inbound = udp_ask_sized(&o.ns, &o.host_ip, 5353, SIZE, T);
    let ok = |r: &Result<netd_tests::harness::netns::Reply, String>, from: &str| {
        r.as_ref()
            .is_ok_and(|r| r.seen_from == from && r.text.len() >= SIZE)
    };
    assert!(
        ok(&egress, &o.host_ip) && ok(&inbound, &o.ip),
        "issue: UDP is masqueraded and published whatever its size ({SIZE}-byte datagrams, fragmented at MTU 1500):\n egress: {}\n inbound: {}\nstats: {:?}\n{}",
        short(&egress),
        short(&inbound),
        h.stats()
            .iter()
            .filter(|e| e["Kind"] == "drop" || e["Kind"] == "nat")
            .filter(|e| e["Packets"].as_u64().unwrap_or(0) > 0)
            .collect::<Vec<_>>(),
        h.log_text()
    );
}

/// A reply, without its (long) payload, for messages.
fn short(r: &Result<netd_tests::harness::netns::Reply, String>) -> String {
    match r {
        Ok(r) => format!(
            "ok: server saw {}:{}, {} bytes back",
            r.seen_from,
            r.seen_port,
            r.text.len()
        ),
        Err(e) => format!("error: {e}"),
    }
}

/// Masquerading shares the uplink address with the host's own connections, and netd does
/// not see those: a masqueraded flow must never take a source port the host is using
/// towards the same server (the server would see one 4-tuple for two connections, and
/// the answers to the host would be translated into the sandbox). The host holds 500
/// connections from ports 61000-61499 (inside netd's masquerading range 61000-65535, which
/// a host with a widened ip_local_port_range also hands out) to an outside server; then a
/// sandbox opens 100 to the same server. All 600 must keep working. (With 500 of the 4536
/// ports taken, 100 masqueraded flows all missing them by chance has odds below 1e-5.)
#[test]
fn masquerading_never_takes_a_port_of_a_host_connection() {
    const HOST: u16 = 500;
    const SANDBOX: u16 = 100;
    // Room for one SYN retransmission (1 s): a loaded machine's echo server can fall
    // behind on accepting, and its full backlog drops a SYN.
    const STEP: Duration = Duration::from_secs(3);
    raise_fd_limit(4 * (HOST + SANDBOX) as u64 + 256);
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("egress", 1, &[]);
    let a = h.sandbox("a");
    h.connect("egress", &a, &[]);
    let srv = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
    let mut host_sessions = Vec::new();
    for p in 61000..61000 + HOST {
        let s = TcpSession::open_from(&h.host_ns, p, &o.ip, srv.port(), STEP).unwrap_or_else(|e| {
            panic!("host connection from port {p} before any sandbox flow: {e}")
        });
        host_sessions.push((p, s));
    }
    let mut failures = Vec::new();
    let mut sandbox_sessions = Vec::new();
    for i in 0..SANDBOX {
        match TcpSession::open(&a, &o.ip, srv.port(), STEP) {
            Ok(s) => sandbox_sessions.push((i, s)),
            Err(e) => failures.push(format!("sandbox connection #{i}: {e}")),
        }
    }
    let mut sandbox_ports = std::collections::BTreeSet::new();
    for (i, s) in &mut sandbox_sessions {
        match s.ask("sandbox") {
            Ok(r) if r.seen_from == o.host_ip => {
                sandbox_ports.insert(r.seen_port);
            }
            other => failures.push(format!("sandbox connection #{i}: {other:?}")),
        }
    }
    // Broken host connections cost a read timeout each: stop after a few.
    for (p, s) in &mut host_sessions {
        if failures.len() >= 3 {
            break;
        }
        match s.ask("host") {
            Ok(r) if r.seen_port == *p => {}
            other => failures.push(format!(
                "host connection from port {p} (a masqueraded flow took it: {}): {other:?}",
                sandbox_ports.contains(p)
            )),
        }
    }
    let taken: Vec<u16> = sandbox_ports
        .iter()
        .copied()
        .filter(|p| (61000..61000 + HOST).contains(p))
        .collect();
    assert!(
        failures.is_empty() && taken.is_empty(),
        "masquerading took source ports the host's own connections to the same server hold: {taken:?}; broken connections:\n{}\n{}",
        failures.join("\n"),
        h.log_text()
    );
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (up to the hard limit);
/// panics if the hard limit is lower.
fn raise_fd_limit(want: u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid out/in struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut r), 0);
        assert!(
            r.rlim_max >= want,
            "this test needs {want} file descriptors; the hard limit is {}",
            r.rlim_max
        );
        if r.rlim_cur < want {
            r.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &r), 0);
        }
    }
}
