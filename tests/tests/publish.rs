//! Port publishing (`network connect -p`, issue 4): a published TCP or UDP port of a
//! sandbox is reachable from the outside through the uplink (client address preserved),
//! from the host netns on 127.0.0.1 and on the host's own addresses (cgroup hooks, no
//! proxy process), and from sandboxes on any netd network (hairpin; the backend sees its
//! network's gateway). A port published on 127.0.0.1 stays local; auto-picked ports show
//! in `port ls`; disconnect removes every trace.
use std::time::Duration;

use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::netns::{
    ask, hold_tcp_listener, udp_ask_connected, EchoServer, Proto, Reply, TcpSession,
};
use netd_tests::harness::outside::{ct_entries, ip_part};
use netd_tests::harness::{run, wait_until, TestHost};
use serde_json::Value;

/// Per-step deadline of an exchange that must work.
const T: Duration = Duration::from_secs(3);
/// Deadline of an exchange that must fail.
const T_FAIL: Duration = Duration::from_millis(1500);

/// Collects every failed expectation of a test, so one run reports all of them.
struct Checks<'a> {
    h: &'a TestHost,
    failures: Vec<String>,
    diag_ns: Vec<String>,
}

impl<'a> Checks<'a> {
    fn new(h: &'a TestHost, diag_ns: &[&str]) -> Self {
        Checks {
            h,
            failures: Vec::new(),
            diag_ns: diag_ns.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// `r` must be an answer; the server must have seen `seen` (if given) and the client's
    /// socket must name `peer` as the other end (if given).
    fn reach(
        &mut self,
        what: &str,
        r: Result<Reply, String>,
        seen: Option<&str>,
        peer: Option<&str>,
    ) {
        match r {
            Err(e) => self.failures.push(format!("[{what}] no answer: {e}")),
            Ok(r) => {
                if let Some(want) = seen {
                    if r.seen_from != want {
                        self.failures.push(format!(
                            "[{what}] the server saw source {}, want {want}: {r:?}",
                            r.seen_from
                        ));
                    }
                }
                if let Some(want) = peer {
                    if r.peer.to_string() != want {
                        self.failures.push(format!(
                            "[{what}] the client's socket says it talks to {}, want {want} (getpeername4/recvmsg4 must undo the translation): {r:?}",
                            r.peer
                        ));
                    }
                }
            }
        }
    }

    /// `r` must have failed.
    fn unreachable(&mut self, what: &str, r: Result<Reply, String>) {
        if let Ok(r) = r {
            self.failures
                .push(format!("[{what}] got an answer but must not: {r:?}"));
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.failures.push(format!("[{what}]"));
        }
    }

    fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        let ns: Vec<&str> = self.diag_ns.iter().map(String::as_str).collect();
        panic!(
            "{} expectation(s) of the port publishing contract failed:\n{}\n\nconntrack: {}\nport ls: {}\n{}\n{}",
            self.failures.len(),
            self.failures.join("\n"),
            serde_json::to_string_pretty(&self.h.conntrack()).unwrap_or_default(),
            self.h.port_ls(None),
            self.h.diagnostics(&ns),
            self.h.log_text()
        );
    }
}

/// A JSON number or a string holding one.
fn num(v: &Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

/// The `port ls --format json` row for container port `cport`/`proto`.
fn port_row(rows: &[Value], cport: u16, proto: Proto) -> Option<&Value> {
    rows.iter().find(|r| {
        num(&r["ContainerPort"]) == Some(cport as u64)
            && r["Protocol"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref()
                == Some(proto.name())
    })
}

#[test]
fn published_ports_reach_the_sandbox_from_outside_host_and_sandboxes() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    h.create_network("other", 2, &[]);
    let b = h.sandbox("b");
    let ip_b = h.connect("web", &b, &["-p", "8080:80/tcp", "-p", "5353:53/udp"]);
    let c = h.sandbox("c");
    h.connect("web", &c, &[]);
    let d = h.sandbox("d");
    h.connect("other", &d, &[]);
    let gw_web = h.gateway_of("web");
    let gw_other = h.gateway_of("other");
    let _tcp = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let _udp = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");

    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    for (proto, hp) in [(Proto::Tcp, 8080u16), (Proto::Udp, 5353)] {
        let p = proto.name();
        let at_uplink = format!("{}:{hp}", o.host_ip);
        ck.reach(
            &format!("{p}: outside -> {at_uplink}: client address preserved"),
            ask(proto, &o.ns, &o.host_ip, hp, T),
            Some(&o.ip),
            Some(&at_uplink),
        );
        ck.reach(
            &format!("{p}: host netns -> 127.0.0.1:{hp}"),
            ask(proto, &h.host_ns, "127.0.0.1", hp, T),
            None,
            Some(&format!("127.0.0.1:{hp}")),
        );
        if proto == Proto::Udp {
            ck.reach(
                &format!("{p}: host netns -> 127.0.0.1:{hp} from a connected UDP socket"),
                udp_ask_connected(&h.host_ns, "127.0.0.1", hp, T),
                None,
                Some(&format!("127.0.0.1:{hp}")),
            );
        }
        ck.reach(
            &format!("{p}: host netns -> the host's uplink address {at_uplink}"),
            ask(proto, &h.host_ns, &o.host_ip, hp, T),
            None,
            Some(&at_uplink),
        );
        ck.reach(
            &format!("{p}: host netns -> the host's address {gw_web}:{hp} (gateway on lo)"),
            ask(proto, &h.host_ns, &gw_web, hp, T),
            None,
            Some(&format!("{gw_web}:{hp}")),
        );
        ck.reach(
            &format!("{p}: hairpin from a sandbox on the same network -> {at_uplink}: backend sees the gateway"),
            ask(proto, &c, &o.host_ip, hp, T),
            Some(&gw_web),
            Some(&at_uplink),
        );
        ck.reach(
            &format!("{p}: hairpin from the backend itself -> {at_uplink}: it sees its gateway"),
            ask(proto, &b, &o.host_ip, hp, T),
            Some(&gw_web),
            Some(&at_uplink),
        );
        ck.reach(
            &format!("{p}: hairpin from a sandbox on another network -> {at_uplink}: backend sees its network's gateway"),
            ask(proto, &d, &o.host_ip, hp, T),
            Some(&gw_web),
            Some(&at_uplink),
        );
        // Gateways are host addresses too (on lo in the host netns).
        for (client, gw) in [(&c, &gw_web), (&d, &gw_other), (&d, &gw_web)] {
            ck.reach(
                &format!("{p}: hairpin from {client} -> the host's address {gw}:{hp} (a gateway)"),
                ask(proto, client, gw, hp, T),
                Some(&gw_web),
                Some(&format!("{gw}:{hp}")),
            );
        }
    }

    // A live connection from the outside shows as a dnat row.
    match TcpSession::open(&o.ns, &o.host_ip, 8080, T).and_then(|mut s| s.ask("live").map(|_| s)) {
        Err(e) => ck
            .failures
            .push(format!("[live TCP session from outside] {e}")),
        Ok(_session) => {
            let rows = ct_entries(&h.conntrack());
            let want_dst = format!("{}:8080", o.host_ip);
            ck.check(
                &format!(
                    "contract: `conntrack ls` shows the inbound flow as dnat {} -> {want_dst} translated to {ip_b}:80",
                    o.ip
                ),
                rows.iter().any(|e| {
                    e.proto == "tcp"
                        && e.kind == "dnat"
                        && ip_part(&e.orig_src) == o.ip
                        && e.orig_dst == want_dst
                        && e.trans_dst == format!("{ip_b}:80")
                }),
            );
        }
    }

    // port ls, text and JSON.
    let text = h.port_ls(Some(&b));
    for line in ["80/tcp -> 0.0.0.0:8080", "53/udp -> 0.0.0.0:5353"] {
        ck.check(
            &format!("contract: `netd port ls {b}` has the line {line:?}; got:\n{text}"),
            text.lines().any(|l| l.trim_end() == line),
        );
    }
    ck.check(
        &format!("contract: `netd port ls {b}` has exactly 2 lines; got:\n{text}"),
        text.lines().filter(|l| !l.trim().is_empty()).count() == 2,
    );
    let all = h.port_ls(None);
    ck.check(
        &format!("contract: `netd port ls` prefixes each line with the sandbox name and a tab; got:\n{all}"),
        all.lines().any(|l| l.trim_end() == format!("{b}\t80/tcp -> 0.0.0.0:8080")),
    );
    let rows = h.port_ls_json(None);
    match port_row(&rows, 80, Proto::Tcp) {
        None => ck.failures.push(format!(
            "[contract: port ls --format json has the 80/tcp row] {rows:?}"
        )),
        Some(r) => {
            ck.check(
                &format!("contract: port ls json fields Sandbox/Network/HostIp/HostPort/ContainerIp: {r}"),
                r["Sandbox"].as_str() == Some(b.as_str())
                    && r["Network"].as_str() == Some("web")
                    && r["HostIp"].as_str() == Some("0.0.0.0")
                    && num(&r["HostPort"]) == Some(8080)
                    && r["ContainerIp"].as_str().map(ip_part) == Some(ip_b.as_str()),
            );
        }
    }
    ck.check(
        &format!("contract: port ls json lists the 53/udp row: {rows:?}"),
        port_row(&rows, 53, Proto::Udp).is_some_and(|r| num(&r["HostPort"]) == Some(5353)),
    );
    ck.finish();
    assert_consistent(&h);
}

#[test]
fn port_published_on_127_0_0_1_is_local_only() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    h.connect(
        "web",
        &b,
        &["-p", "127.0.0.1:8081:80/tcp", "-p", "127.0.0.1:5354:53/udp"],
    );
    let c = h.sandbox("c");
    h.connect("web", &c, &[]);
    let tcp = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let udp = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");

    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    for (proto, hp, server) in [(Proto::Tcp, 8081u16, &tcp), (Proto::Udp, 5354, &udp)] {
        let p = proto.name();
        ck.reach(
            &format!("{p}: contract: 127.0.0.1:{hp} is reachable from the host netns"),
            ask(proto, &h.host_ns, "127.0.0.1", hp, T),
            None,
            Some(&format!("127.0.0.1:{hp}")),
        );
        let hits = server.hits();
        ck.unreachable(
            &format!(
                "{p}: contract: HOST_IP=127.0.0.1 is never reachable from outside (outside -> {}:{hp})",
                o.host_ip
            ),
            ask(proto, &o.ns, &o.host_ip, hp, T_FAIL),
        );
        ck.unreachable(
            &format!(
                "{p}: contract: HOST_IP=127.0.0.1 is reachable only from the host netns (sandbox -> {}:{hp})",
                o.host_ip
            ),
            ask(proto, &c, &o.host_ip, hp, T_FAIL),
        );
        ck.check(
            &format!(
                "{p}: nothing from outside or a sandbox may reach the backend of a 127.0.0.1 port ({} new hits)",
                server.hits() - hits
            ),
            server.hits() == hits,
        );
    }
    let text = h.port_ls(Some(&b));
    ck.check(
        &format!("contract: port ls shows `80/tcp -> 127.0.0.1:8081`; got:\n{text}"),
        text.lines()
            .any(|l| l.trim_end() == "80/tcp -> 127.0.0.1:8081"),
    );
    ck.finish();
}

#[test]
fn auto_picked_and_ranged_host_ports_show_in_port_ls_and_work() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    h.connect(
        "web",
        &b,
        &[
            "-p",
            "80",
            "-p",
            "20000-20009:53/udp",
            "-p",
            "21000-21002:81-83",
            "-p",
            "9000:9000/sctp",
        ],
    );
    let _tcp = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let _udp = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");
    let _t82 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:82");

    let rows = h.port_ls_json(Some(&b));
    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    ck.check(
        &format!("contract: 1 + 1 + 3 + 1 published ports in port ls: {rows:#?}"),
        rows.len() == 6,
    );
    ck.check(
        &format!("contract: `/sctp` is a protocol of -p: port ls shows 9000/sctp: {rows:?}"),
        rows.iter().any(|r| {
            r["Protocol"].as_str() == Some("sctp")
                && num(&r["HostPort"]) == Some(9000)
                && num(&r["ContainerPort"]) == Some(9000)
        }),
    );
    let auto = port_row(&rows, 80, Proto::Tcp).and_then(|r| num(&r["HostPort"]));
    match auto {
        Some(hp) if (49153..=60999).contains(&hp) => {
            ck.reach(
                &format!("auto-picked port {hp} from outside"),
                ask(Proto::Tcp, &o.ns, &o.host_ip, hp as u16, T),
                Some(&o.ip),
                None,
            );
            let text = h.port_ls(Some(&b));
            ck.check(
                &format!("contract: port ls text shows `80/tcp -> 0.0.0.0:{hp}`; got:\n{text}"),
                text.lines().any(|l| l.trim_end() == format!("80/tcp -> 0.0.0.0:{hp}")),
            );
        }
        other => ck.failures.push(format!(
            "[contract: `-p 80` picks a free host port in 49153-60999 (tcp by default)] got {other:?}: {rows:#?}"
        )),
    }
    match port_row(&rows, 53, Proto::Udp).and_then(|r| num(&r["HostPort"])) {
        Some(hp) if (20000..=20009).contains(&hp) => ck.reach(
            &format!("port {hp} picked from 20000-20009, from outside"),
            ask(Proto::Udp, &o.ns, &o.host_ip, hp as u16, T),
            Some(&o.ip),
            None,
        ),
        other => ck.failures.push(format!(
            "[contract: `-p 20000-20009:53/udp` picks one port of the range] got {other:?}: {rows:#?}"
        )),
    }
    for (cp, hp) in [(81u16, 21000u64), (82, 21001), (83, 21002)] {
        ck.check(
            &format!("contract: `-p 21000-21002:81-83` publishes {hp} -> {cp}: {rows:?}"),
            port_row(&rows, cp, Proto::Tcp).and_then(|r| num(&r["HostPort"])) == Some(hp),
        );
    }
    ck.reach(
        "21001 -> 82 from outside",
        ask(Proto::Tcp, &o.ns, &o.host_ip, 21001, T),
        Some(&o.ip),
        None,
    );
    ck.finish();
}

#[test]
fn disconnect_removes_every_trace_of_publishing() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    let ip_b = h.connect("web", &b, &["-p", "8080:80/tcp", "-p", "5353:53/udp"]);
    let tcp = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let udp = EchoServer::start(&b, Proto::Udp, "0.0.0.0:53");
    let out_udp = EchoServer::start(&o.ns, Proto::Udp, &format!("{}:0", o.ip));

    // Live flows of every kind: inbound TCP (held open), inbound UDP, egress UDP.
    let mut inbound = TcpSession::open(&o.ns, &o.host_ip, 8080, T).unwrap_or_else(|e| {
        panic!(
            "contract: published port reachable from outside: {e}\n{}",
            h.log_text()
        )
    });
    inbound
        .ask("hello")
        .unwrap_or_else(|e| panic!("inbound exchange: {e}\n{}", h.log_text()));
    ask(Proto::Udp, &o.ns, &o.host_ip, 5353, T)
        .unwrap_or_else(|e| panic!("inbound UDP: {e}\n{}", h.log_text()));
    ask(Proto::Udp, &b, &o.ip, out_udp.port(), T)
        .unwrap_or_else(|e| panic!("egress UDP: {e}\n{}", h.log_text()));
    // A client sandbox with a live hairpin session to b's port: disconnecting the client
    // removes its entries (and leaves b's publishing alone).
    let c = h.sandbox("c");
    let ip_c = h.connect("web", &c, &[]);
    let mut hairpin = TcpSession::open(&c, &o.host_ip, 8080, T)
        .and_then(|mut s| s.ask("hairpin").map(|_| s))
        .unwrap_or_else(|e| {
            panic!(
                "contract: hairpin to a published port: {e}\n{}",
                h.log_text()
            )
        });
    let before = ct_entries(&h.conntrack());
    assert!(
        before.iter().any(|e| e.mentions(&ip_b)),
        "contract: conntrack ls lists the live flows of {ip_b}: {before:#?}"
    );
    assert!(
        before
            .iter()
            .any(|e| e.kind == "hairpin" && ip_part(&e.orig_src) == ip_c),
        "contract: conntrack ls shows the live hairpin flow of {ip_c} as Kind hairpin: {before:#?}"
    );
    h.disconnect("web", &c);
    let after_c = ct_entries(&h.conntrack());
    let left: Vec<_> = after_c.iter().filter(|e| e.mentions(&ip_c)).collect();
    assert!(
        left.is_empty(),
        "contract: disconnect removes every live conntrack entry of the endpoint {ip_c} (a hairpin client); left: {left:#?}"
    );
    assert!(
        hairpin.ask("after").is_err(),
        "the disconnected client's hairpin session cannot go on"
    );
    assert_eq!(
        h.port_ls_json(None).len(),
        2,
        "disconnecting a client leaves b's publishing alone"
    );

    h.disconnect("web", &b);
    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    let rows = h.port_ls_json(None);
    ck.check(
        &format!("contract: disconnect removes the publishing: port ls --format json = {rows:?}"),
        rows.is_empty(),
    );
    let text = h.port_ls(None);
    ck.check(
        &format!("contract: `netd port ls` prints nothing after disconnect: {text:?}"),
        text.trim().is_empty(),
    );
    let after = ct_entries(&h.conntrack());
    let left: Vec<_> = after.iter().filter(|e| e.mentions(&ip_b)).collect();
    ck.check(
        &format!("contract: disconnect removes every live conntrack entry of the endpoint {ip_b}; left: {left:#?}"),
        left.is_empty(),
    );
    let (tcp_hits, udp_hits) = (tcp.hits(), udp.hits());
    ck.unreachable(
        "contract: after disconnect the published TCP port is gone (outside -> :8080)",
        ask(Proto::Tcp, &o.ns, &o.host_ip, 8080, T_FAIL),
    );
    ck.unreachable(
        "contract: after disconnect the published UDP port is gone (outside -> :5353)",
        ask(Proto::Udp, &o.ns, &o.host_ip, 5353, T_FAIL),
    );
    ck.unreachable(
        "contract: after disconnect 127.0.0.1:8080 in the host netns is gone",
        ask(Proto::Tcp, &h.host_ns, "127.0.0.1", 8080, T_FAIL),
    );
    ck.check(
        "nothing reaches the disconnected backend",
        tcp.hits() == tcp_hits && udp.hits() == udp_hits,
    );
    ck.finish();
    drop(inbound);
    assert_consistent(&h);

    // The host port is free again: the same spec publishes anew.
    h.connect("web", &b, &["-p", "8080:80/tcp"]);
    let r = ask(Proto::Tcp, &o.ns, &o.host_ip, 8080, T);
    assert!(
        r.is_ok(),
        "a port freed by disconnect can be published again: {r:?}\n{}",
        h.log_text()
    );
}

/// Ids of the cgroup bpf links pinned under the daemon's `<bpffs>/links`.
fn hook_links(h: &TestHost) -> Vec<u64> {
    let dir = h.bpffs.join("links");
    let mut ids = Vec::new();
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("contract: link pins under {}: {e}", dir.display()))
        .flatten()
    {
        let path = e.path();
        let r = run(
            "bpftool",
            &["-j", "link", "show", "pinned", path.to_str().unwrap()],
        );
        assert!(r.success(), "{r}");
        let v: Value = serde_json::from_str(r.stdout.trim())
            .unwrap_or_else(|err| panic!("bpftool json {:?}: {err}", r.stdout));
        if v["type"].as_str() == Some("cgroup") {
            ids.push(v["id"].as_u64().expect("link id"));
        }
    }
    ids.sort();
    ids
}

fn link_exists(id: u64) -> bool {
    run("bpftool", &["link", "show", "id", &id.to_string()]).success()
}

/// The socket hooks hang on the machine's cgroup root, where every daemon of the suite
/// attaches: a restart must replace them (not add more), and they must go away with the
/// daemon's pins, so that runs never pile hooks up on the machine.
#[test]
fn socket_hooks_are_replaced_on_restart_and_leave_with_their_pins() {
    let mut h = TestHost::started();
    let first = hook_links(&h);
    assert_eq!(
        first.len(),
        4,
        "contract: four cgroup hooks (connect4, sendmsg4, recvmsg4, getpeername4) pinned as links: {first:?}"
    );
    assert!(first.iter().all(|id| link_exists(*id)), "{first:?}");
    h.kill9();
    h.start_daemon();
    let second = hook_links(&h);
    assert_eq!(second.len(), 4, "four hooks after a restart: {second:?}");
    let stale: Vec<u64> = first
        .iter()
        .copied()
        .filter(|id| !second.contains(id))
        .collect();
    wait_until(
        Duration::from_secs(5),
        "replaced hook links to detach",
        || (!stale.iter().any(|id| link_exists(*id))).then_some(()),
    );
    drop(h);
    wait_until(
        Duration::from_secs(5),
        "the hooks of a removed test daemon to detach from the cgroup root",
        || (!second.iter().any(|id| link_exists(*id))).then_some(()),
    );
}

/// The contract's own example: `-p 20000-29999:20000-29999/tcp` publishes 10,000 ports in
/// one call; each works, conflicts with any of them are refused, and disconnect takes
/// them all away.
#[test]
fn ten_thousand_ports_in_one_call() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    let c = h.sandbox("c");
    let t0 = std::time::Instant::now();
    h.connect("web", &b, &["-p", "20000-29999:20000-29999/tcp"]);
    let took = t0.elapsed();
    let rows = h.port_ls_json(Some(&b));
    assert_eq!(
        rows.len(),
        10_000,
        "contract: `-p 20000-29999:20000-29999/tcp` publishes 10,000 ports (connect took {took:?})"
    );
    let _s1 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:20000");
    let _s2 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:25432");
    let _s3 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:29999");
    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    for port in [20000u16, 25432, 29999] {
        ck.reach(
            &format!("outside -> {}:{port} of the 10,000", o.host_ip),
            ask(Proto::Tcp, &o.ns, &o.host_ip, port, T),
            Some(&o.ip),
            None,
        );
    }
    ck.reach(
        "host netns -> 127.0.0.1:25432 of the 10,000",
        ask(Proto::Tcp, &h.host_ns, "127.0.0.1", 25432, T),
        None,
        None,
    );
    ck.finish();
    h.netd_refused(
        &["network", "connect", "-p", "25000:80", "web", &c],
        "contract: a host port inside a published range is a conflict",
    );
    assert!(
        h.endpoint("web", &c).is_none(),
        "refused connect left {c} on web"
    );
    h.disconnect("web", &b);
    let rows = h.port_ls_json(None);
    assert!(
        rows.is_empty(),
        "contract: disconnect removes all 10,000 publications; {} left",
        rows.len()
    );
    assert_consistent(&h);
}

/// `HOST_START-HOST_END:CPORT` picks a free port of the range: not one a host socket holds,
/// not one netd already published.
#[test]
fn host_port_range_skips_ports_in_use() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let _busy = hold_tcp_listener(&h.host_ns, "0.0.0.0:20100");
    let b = h.sandbox("b");
    let c = h.sandbox("c");
    h.connect("web", &b, &["-p", "20100-20101:80"]);
    h.connect("web", &c, &["-p", "20101-20102:80"]);
    let rows = h.port_ls_json(None);
    let host_port = |sb: &str| {
        rows.iter()
            .find(|r| r["Sandbox"].as_str() == Some(sb))
            .and_then(|r| num(&r["HostPort"]))
    };
    assert_eq!(
        (host_port(&b), host_port(&c)),
        (Some(20101), Some(20102)),
        "contract: a range picks a free port: 20100 is held by a host socket, 20101 then published by netd: {rows:#?}"
    );
    let _srv = EchoServer::start(&c, Proto::Tcp, "0.0.0.0:80");
    let r = ask(Proto::Tcp, &o.ns, &o.host_ip, 20102, T);
    assert!(
        r.as_ref().is_ok_and(|r| r.seen_from == o.ip),
        "the picked port works: {r:?}\n{}",
        h.log_text()
    );
}

/// Only what is published is reachable from outside a masquerading network: a sandbox's
/// own address is not, even for an outside that routes to the subnet through the host.
#[test]
fn unpublished_ports_are_unreachable_from_outside_even_with_a_route() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    let ip_b = h.connect("web", &b, &["-p", "8080:80"]);
    h.route_back_from_outside(&h.subnet(1));
    let srv80 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let srv81 = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:81");
    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    ck.reach(
        "the published port works",
        ask(Proto::Tcp, &o.ns, &o.host_ip, 8080, T),
        Some(&o.ip),
        None,
    );
    let before = (srv80.hits(), srv81.hits());
    ck.unreachable(
        &format!("outside -> {ip_b}:81 directly (never published)"),
        ask(Proto::Tcp, &o.ns, &ip_b, 81, T_FAIL),
    );
    ck.unreachable(
        &format!("outside -> {ip_b}:80 directly (published as 8080 on the host, not on the sandbox address)"),
        ask(Proto::Tcp, &o.ns, &ip_b, 80, T_FAIL),
    );
    ck.unreachable(
        &format!("outside -> {}:81 (not published)", o.host_ip),
        ask(Proto::Tcp, &o.ns, &o.host_ip, 81, T_FAIL),
    );
    ck.check(
        "nothing unpublished reached the sandbox's servers",
        (srv80.hits(), srv81.hits()) == before,
    );
    ck.finish();
}

/// `sandbox rm` of a sandbox with published ports frees them like disconnect.
#[test]
fn sandbox_rm_unpublishes_its_ports() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    h.connect("web", &b, &["-p", "8080:80", "-p", "5353:53/udp"]);
    h.netd_ok(&["sandbox", "rm", &b]);
    let rows = h.port_ls_json(None);
    assert!(
        rows.is_empty(),
        "removing a sandbox removes its publishing: {rows:?}"
    );
    let c = h.sandbox("c");
    h.connect("web", &c, &["-p", "8080:80", "-p", "5353:53/udp"]);
    let _srv = EchoServer::start(&c, Proto::Tcp, "0.0.0.0:80");
    let r = ask(Proto::Tcp, &o.ns, &o.host_ip, 8080, T);
    assert!(
        r.as_ref().is_ok_and(|r| r.seen_from == o.ip),
        "the freed port serves its new owner: {r:?}\n{}",
        h.log_text()
    );
    assert_consistent(&h);
}

/// `HOST_IP:HOST_PORT:CPORT` with one of the host's addresses publishes on that address
/// only (docker -p): reachable there, from outside and from the host, not on 127.0.0.1.
#[test]
fn port_published_on_the_uplink_address_answers_only_there() {
    let (h, o) = TestHost::with_uplink(&[]);
    h.create_network("web", 1, &[]);
    let b = h.sandbox("b");
    let spec = format!("{}:8083:80", o.host_ip);
    h.connect("web", &b, &["-p", &spec]);
    let srv = EchoServer::start(&b, Proto::Tcp, "0.0.0.0:80");
    let mut ck = Checks::new(&h, &[&b, &o.ns]);
    let text = h.port_ls(Some(&b));
    ck.check(
        &format!(
            "contract: port ls shows `80/tcp -> {}:8083`; got {text:?}",
            o.host_ip
        ),
        text.lines()
            .any(|l| l.trim_end() == format!("80/tcp -> {}:8083", o.host_ip)),
    );
    ck.reach(
        &format!("outside -> {}:8083", o.host_ip),
        ask(Proto::Tcp, &o.ns, &o.host_ip, 8083, T),
        Some(&o.ip),
        None,
    );
    ck.reach(
        &format!("host netns -> {}:8083", o.host_ip),
        ask(Proto::Tcp, &h.host_ns, &o.host_ip, 8083, T),
        None,
        Some(&format!("{}:8083", o.host_ip)),
    );
    let hits = srv.hits();
    ck.unreachable(
        "docker -p: a port published on one host address is not on 127.0.0.1",
        ask(Proto::Tcp, &h.host_ns, "127.0.0.1", 8083, T_FAIL),
    );
    ck.check(
        "nothing reached the backend through 127.0.0.1:8083",
        srv.hits() == hits,
    );
    ck.finish();
}

/// Two daemons, each in its own host netns, both publish host port 8080: the cgroup hooks
/// of each rewrite only the sockets of its own netns, so 127.0.0.1:8080 reaches a
/// different backend in each.
#[test]
fn two_daemons_publish_the_same_port_without_crosstalk() {
    let (h1, _o1) = TestHost::with_uplink(&[]);
    let (h2, _o2) = TestHost::with_uplink(&[]);
    let mut servers = Vec::new();
    for (h, cport) in [(&h1, 80u16), (&h2, 81)] {
        h.create_network("web", 1, &[]);
        let b = h.sandbox("b");
        h.connect("web", &b, &["-p", &format!("8080:{cport}")]);
        servers.push(EchoServer::start(
            &b,
            Proto::Tcp,
            &format!("0.0.0.0:{cport}"),
        ));
    }
    for (i, h) in [&h1, &h2].into_iter().enumerate() {
        let before: Vec<usize> = servers.iter().map(EchoServer::hits).collect();
        let r = ask(Proto::Tcp, &h.host_ns, "127.0.0.1", 8080, T);
        let after: Vec<usize> = servers.iter().map(EchoServer::hits).collect();
        let mut want = before.clone();
        want[i] += 1;
        assert!(
            r.is_ok() && after == want,
            "contract: the socket hooks only rewrite sockets of their daemon's own netns: 127.0.0.1:8080 in {} must reach daemon {}'s backend only; reply {r:?}, backend connections {before:?} -> {after:?}\n{}",
            h.host_ns,
            i + 1,
            h.log_text()
        );
    }
}
