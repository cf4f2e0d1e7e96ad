//! Overlay networks across hosts (issue 5): two or three "hosts" on one machine, each a
//! netns running its own daemon, joined by an underlay bridge and sharing a real etcd
//! that the test starts itself. Sandboxes on different hosts talk ICMP, TCP and UDP over
//! VXLAN done by eBPF; networks stay apart; egress leaves through the sandbox's own host's
//! NAT; addresses are never given twice; and the dataplane keeps forwarding while etcd or
//! a daemon is down, while a dead host's endpoints go away with its lease.
//!
//! Every test ends by disconnecting everything and removing its networks, and checks that
//! etcd and the maps are empty, then that the namespaces, pins and etcd are gone.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use netd_tests::harness::check::{assert_same, snapshot};
use netd_tests::harness::cluster::{
    ping_once, poll, text, Cluster, CLUSTER_TTL, ETCD_PREFIX, OPT_VXLANID, OVERLAY_MTU,
    UNDERLAY_IF, UNDERLAY_MTU,
};
use netd_tests::harness::cmd::kill_pid;
use netd_tests::harness::netns::{tcp_ask, udp_ask, EchoServer, IcmpWatch, Proto};
use netd_tests::harness::{run_timeout, Background, Run, TestHost};
use serde_json::{json, Value};

/// Per-step deadline of a client exchange.
const T: Duration = Duration::from_secs(3);
/// How long a change in etcd gets to reach every daemon (the contract says ~1 s).
const PROPAGATION: Duration = Duration::from_secs(5);
/// How long daemons get to recover after etcd or a daemon comes back.
const RECOVERY: Duration = Duration::from_secs(20);

/// Host indexes.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;

/// `Options[vxlanid_list]` of an inspect/ls object, as a number.
fn vni_of(v: &Value) -> u32 {
    let s = text(&v["Options"][OPT_VXLANID]);
    s.parse()
        .unwrap_or_else(|_| panic!("contract: Options[{OPT_VXLANID}] is the VNI, got {s:?}: {v}"))
}

/// The MTU an inspect object reports: `Options[com.docker.network.driver.mtu]` (as for
/// bridge networks) or a top-level `MTU`.
fn inspect_mtu(v: &Value) -> Option<u32> {
    [
        &v["Options"]["com.docker.network.driver.mtu"],
        &v["MTU"],
        &v["Mtu"],
    ]
    .into_iter()
    .find_map(|m| text(m).parse().ok())
}

/// MTU of `ifname` in netns `ns`.
fn mtu_in(h: &TestHost, ns: &str, ifname: &str) -> u64 {
    let links = h.links(ns);
    let l = links
        .iter()
        .find(|l| l["ifname"] == ifname)
        .unwrap_or_else(|| panic!("no {ifname} in {ns}: {links:?}"));
    l["mtu"].as_u64().expect("mtu is a number")
}

/// True if `ip` lies in `cidr`.
fn in_subnet(ip: &str, cidr: &str) -> bool {
    let (net, len) = cidr.split_once('/').expect("CIDR");
    let net: Ipv4Addr = net.parse().expect("CIDR address");
    let len: u32 = len.parse().expect("CIDR prefix");
    let ip: Ipv4Addr = ip.parse().expect("IPv4");
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    u32::from(ip) & mask == u32::from(net) & mask
}

/// Subnet of `net` as `h` inspects it.
fn subnet_of(h: &TestHost, net: &str) -> String {
    text(&h.inspect(net)["IPAM"]["Config"][0]["Subnet"])
}

/// MAC of `sandbox` on `net` (from `h`'s inspect) as bytes.
fn mac_of(h: &TestHost, net: &str, sandbox: &str) -> [u8; 6] {
    let ep = h.endpoint(net, sandbox).expect("endpoint in inspect");
    let s = text(&ep["MacAddress"]);
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC {s:?}: {e}")))
        .collect();
    v.try_into()
        .unwrap_or_else(|_| panic!("MAC {s:?} is not 6 bytes"))
}

/// Packets of every `drop` row with one of `reasons`, on every host, any network.
fn drops(c: &Cluster, reasons: &[&str]) -> u64 {
    c.hosts
        .iter()
        .flat_map(|h| h.stats())
        .filter(|e| e["Kind"] == "drop" && reasons.iter().any(|r| e["Reason"] == *r))
        .filter_map(|e| e["Packets"].as_u64())
        .sum()
}

/// Panics with the cluster's diagnostics unless `from` reaches `ip`.
fn assert_ping(c: &Cluster, from: &str, ip: &str, why: &str) {
    if !c.host(A).ping(from, ip) {
        panic!("{why}: ping {from} -> {ip} failed\n{}", c.diagnostics());
    }
}

/// Panics if `from` reaches `ip`.
fn assert_no_ping(c: &Cluster, from: &str, ip: &str, why: &str) {
    if c.host(A).ping(from, ip) {
        panic!("{why}: ping {from} -> {ip} succeeded but must not");
    }
}

/// TCP and UDP from `from` to an echo server in `to` on `to_ip`: both answer, and the
/// server sees `from_ip` as the source (no translation inside an overlay network).
fn assert_tcp_udp(c: &Cluster, from: &str, from_ip: &str, to: &str, to_ip: &str) {
    let tcp = EchoServer::start(to, Proto::Tcp, &format!("{to_ip}:0"));
    let udp = EchoServer::start(to, Proto::Udp, &format!("{to_ip}:0"));
    for (proto, r) in [
        ("TCP", tcp_ask(from, to_ip, tcp.port(), T)),
        ("UDP", udp_ask(from, to_ip, udp.port(), T)),
    ] {
        let r = r.unwrap_or_else(|e| {
            panic!(
                "issue: {proto} between sandboxes on different hosts ({from} -> {to_ip}): {e}\n{}",
                c.diagnostics()
            )
        });
        assert_eq!(
            r.seen_from, from_ip,
            "{proto} {from} -> {to_ip}: the server must see the sender's overlay address: {r:?}"
        );
    }
}

/// `ping -i INTERVAL -w 60` in the background; stop it with [`stop_ping`].
fn background_ping(from: &str, ip: &str, interval: &str) -> Background {
    Background::spawn(
        "ip",
        &[
            "netns", "exec", from, "ping", "-n", "-q", "-i", interval, "-w", "60", ip,
        ],
        Duration::from_secs(90),
    )
}

/// SIGINT to a [`background_ping`] (it prints its summary and exits); (sent, received).
fn stop_ping(ping: Background) -> (u32, u32, Run) {
    kill_pid(ping.pid(), libc::SIGINT);
    let r = ping.finish();
    let (tx, rx) = r.ping_counts();
    (tx, rx, r)
}

/// `ls`, `inspect` (with `Peers` sorted) and `sandbox ls` of a daemon: what a restart must
/// keep.
fn views(h: &TestHost) -> Value {
    let mut inspect = h.inspect_all();
    for n in &mut inspect {
        if let Some(peers) = n.get_mut("Peers").and_then(Value::as_array_mut) {
            peers.sort_by_key(|p| p.to_string());
        }
    }
    json!({ "ls": h.ls_json(), "inspect": inspect, "sandboxes": h.sandboxes() })
}

/// The harness itself: the underlay joins hosts, outside and etcd; etcd keeps its data
/// across SIGKILL and restart and answers nothing while paused; daemons join the cluster
/// and register their hosts.
#[test]
fn cluster_harness_underlay_etcd_restart_and_daemons_joining() {
    let mut c = Cluster::topology(2);
    for i in [A, B] {
        let h = c.host(i);
        assert_eq!(
            mtu_in(h, &h.host_ns, UNDERLAY_IF),
            u64::from(UNDERLAY_MTU),
            "underlay MTU"
        );
        let other = c.vteps[1 - i].clone();
        for target in [other.as_str(), c.outside_ip.as_str(), c.etcd.ip.as_str()] {
            assert!(
                ping_once(&h.host_ns, target),
                "harness: host {i} must reach {target} over the underlay\n{}",
                c.diagnostics()
            );
        }
    }
    let key = format!("{ETCD_PREFIX}harness-selftest");
    let put = c.etcd.ctl(&["put", &key, "kept"]);
    assert!(put.success(), "{put}");
    c.etcd.kill();
    assert!(!c.etcd.healthy(), "a killed etcd must not answer");
    c.etcd.start();
    assert_eq!(
        c.etcd.get_prefix(&key).get(&key).map(String::as_str),
        Some("kept"),
        "etcd restarted on its data dir keeps what it had"
    );
    c.etcd.pause();
    assert!(!c.etcd.healthy(), "a paused etcd must not answer");
    c.etcd.resume();
    assert!(
        poll(Instant::now() + Duration::from_secs(10), || c
            .etcd
            .healthy()),
        "etcd answers again after SIGCONT"
    );
    let del = c.etcd.ctl(&["del", &key]);
    assert!(del.success(), "{del}");

    for i in [A, B] {
        let args = c.cluster_args(i);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        c.host_mut(i).start_daemon_with_args(&refs);
    }
    let want: BTreeSet<String> = c
        .vteps
        .iter()
        .map(|v| format!("{ETCD_PREFIX}hosts/{v}"))
        .collect();
    let joined = poll(Instant::now() + PROPAGATION, || {
        let keys: BTreeSet<String> = c
            .etcd
            .keys(&format!("{ETCD_PREFIX}hosts/"))
            .into_iter()
            .collect();
        want.is_subset(&keys)
    });
    assert!(
        joined,
        "contract: every daemon registers /netd/v1/hosts/<advertise ip>; want {want:?}, etcd has {:?}\n{}",
        c.etcd.keys(ETCD_PREFIX),
        c.diagnostics()
    );
    c.finish();
}

#[test]
fn overlay_network_spans_two_hosts_with_ping_tcp_udp_and_mtu() {
    let c = Cluster::new(2);
    let (a, b) = (c.host(A), c.host(B));
    let id = c.create_overlay(A, "ov", &[]);
    let took = c.wait_visible_everywhere("ov", PROPAGATION);
    eprintln!("overlay network visible on every host after {took:?}");

    let va = a.inspect("ov");
    let vni = vni_of(&va);
    assert!(vni >= 256, "contract: VNIs start at 256, got {vni}");
    for (i, h) in [(A, a), (B, b)] {
        let ls = h.ls_json();
        let row = ls
            .iter()
            .find(|v| v["Name"] == "ov")
            .unwrap_or_else(|| panic!("host {i}: ov not in ls: {ls:?}"));
        assert_eq!(row["ID"], &id[..12], "host {i}: ls shows the 12-char id");
        assert_eq!(row["Driver"], "overlay", "host {i}: ls Driver: {row}");
        assert_eq!(row["Scope"], "global", "host {i}: ls Scope: {row}");
        let v = h.inspect("ov");
        assert_eq!(v["Id"], id.as_str(), "host {i}: same id everywhere: {v}");
        assert_eq!(v["Driver"], "overlay", "host {i}: inspect Driver: {v}");
        assert_eq!(v["Scope"], "global", "host {i}: inspect Scope: {v}");
        assert_eq!(vni_of(&v), vni, "host {i}: one VNI per network, everywhere");
        assert_eq!(
            inspect_mtu(&v),
            Some(OVERLAY_MTU),
            "issue: default overlay MTU is the underlay's ({UNDERLAY_MTU}) - 50; host {i} inspect: {v}"
        );
        assert_eq!(
            v["IPAM"]["Config"], va["IPAM"]["Config"],
            "host {i}: same IPAM everywhere"
        );
    }
    let subnet = subnet_of(a, "ov");

    let sa = a.sandbox("sa");
    let sb = b.sandbox("sb");
    let ip_a = a.connect("ov", &sa, &[]);
    let ip_b = b.connect("ov", &sb, &[]);
    assert_ne!(ip_a, ip_b, "one address per endpoint across hosts");
    for ip in [&ip_a, &ip_b] {
        assert!(in_subnet(ip, &subnet), "{ip} must lie in {subnet}");
    }
    for (h, s) in [(a, &sa), (b, &sb)] {
        assert_eq!(
            mtu_in(h, s, "eth0"),
            u64::from(OVERLAY_MTU),
            "issue: the sandbox's eth0 gets the overlay MTU"
        );
    }
    c.wait_remote(A, &ip_b, true, PROPAGATION, "A learns B's endpoint");
    c.wait_remote(B, &ip_a, true, PROPAGATION, "B learns A's endpoint");
    let remote = c.remote_endpoints(A)[&ip_b.parse().unwrap()];
    assert_eq!(
        Ipv4Addr::from(remote.vtep).to_string(),
        c.vteps[B],
        "REMOTE_EPS vtep: {remote:?}"
    );
    assert_eq!(remote.vni, vni, "REMOTE_EPS vni: {remote:?}");
    assert_eq!(
        remote.mac,
        mac_of(b, "ov", &sb),
        "REMOTE_EPS mac: {remote:?}"
    );
    assert_eq!(
        c.vnis(A).get(&vni),
        Some(&remote.net_id),
        "VNIS maps the VNI to the network's id"
    );

    assert_ping(&c, &sa, &ip_b, "issue: ping A -> B over the overlay");
    assert_ping(&c, &sb, &ip_a, "issue: ping B -> A over the overlay");
    assert_tcp_udp(&c, &sa, &ip_a, &sb, &ip_b);
    assert_tcp_udp(&c, &sb, &ip_b, &sa, &ip_a);
    // A full-size packet (1450 bytes, DF) fits the underlay once encapsulated.
    let size = (OVERLAY_MTU - 28).to_string();
    for (from, to) in [(&sa, &ip_b), (&sb, &ip_a)] {
        let r = a.exec_in(
            from,
            &[
                "ping", "-n", "-q", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", &size, to,
            ],
        );
        assert!(
            r.success(),
            "issue: full-MTU ({OVERLAY_MTU}) packets cross the overlay: {r}\n{}",
            c.diagnostics()
        );
    }
    for (h, s) in [(a, &sa), (b, &sb)] {
        let gw = h.gateway_of("ov");
        assert_ping(
            &c,
            s,
            &gw,
            "a sandbox reaches its own host's overlay gateway",
        );
    }
    for (i, h) in [(A, a), (B, b)] {
        let stats = h.stats();
        for what in ["encap", "decap"] {
            let n = netd_tests::harness::stat_in(&stats, "ov", "delivery", what);
            assert!(
                n > 0,
                "contract: host {i} counts `{what}` deliveries on ov after cross-host traffic: {stats:#?}"
            );
        }
    }
    assert!(
        c.peer_ips(A, "ov").contains(&c.vteps[B]) && c.peer_ips(B, "ov").contains(&c.vteps[A]),
        "contract: inspect Peers lists the hosts with endpoints: A sees {:?}, B sees {:?}",
        c.peer_ips(A, "ov"),
        c.peer_ips(B, "ov")
    );
    c.finish();
}

#[test]
fn overlay_networks_are_isolated_across_hosts() {
    let c = Cluster::new(2);
    let (a, b) = (c.host(A), c.host(B));
    c.create_overlay(A, "n1", &["--subnet", "10.0.41.0/24"]);
    c.create_overlay(B, "n2", &["--subnet", "10.0.42.0/24"]);
    c.create_overlay(
        A,
        "n3",
        &[
            "--subnet",
            "10.0.43.0/24",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
        ],
    );
    for n in ["n1", "n2", "n3"] {
        c.wait_visible_everywhere(n, PROPAGATION);
    }
    let vnis: BTreeSet<u32> = ["n1", "n2", "n3"]
        .iter()
        .map(|n| vni_of(&a.inspect(n)))
        .collect();
    assert_eq!(vnis.len(), 3, "issue: one VNI per network: {vnis:?}");

    let mut ip: BTreeMap<&str, String> = BTreeMap::new();
    let mut ns: BTreeMap<&str, String> = BTreeMap::new();
    for (name, host, net) in [
        ("a1", A, "n1"),
        ("a2", A, "n2"),
        ("a3", A, "n3"),
        ("b1", B, "n1"),
        ("b2", B, "n2"),
        ("b3", B, "n3"),
    ] {
        let h = c.host(host);
        let s = h.sandbox(name);
        ip.insert(name, h.connect(net, &s, &[]));
        ns.insert(name, s);
    }
    for (host, names) in [(A, ["b1", "b2", "b3"]), (B, ["a1", "a2", "a3"])] {
        for n in names {
            c.wait_remote(host, &ip[n], true, PROPAGATION, "endpoints propagate");
        }
    }

    // Same network: works both ways, so the failures below are isolation.
    for (from, to) in [("a1", "b1"), ("b1", "a1"), ("a2", "b2"), ("b2", "a2")] {
        assert_ping(
            &c,
            &ns[from],
            &ip[to],
            "issue: same overlay network across hosts",
        );
    }
    let before = drops(&c, &["network-isolation", "unknown-destination"]);
    for (from, to) in [("a1", "b2"), ("a2", "b1"), ("b1", "a2"), ("b2", "a1")] {
        assert_no_ping(
            &c,
            &ns[from],
            &ip[to],
            "issue: overlay networks are isolated from each other",
        );
    }
    let after = drops(&c, &["network-isolation", "unknown-destination"]);
    assert!(
        after > before,
        "contract: cross-network packets count as network-isolation/unknown-destination drops ({before} -> {after}); A: {:#?}\nB: {:#?}",
        a.stats(),
        b.stats()
    );

    // enable_icc=false holds across hosts too, but not towards the gateway.
    let icc_before = drops(&c, &["icc-disabled"]);
    assert_no_ping(
        &c,
        &ns["a3"],
        &ip["b3"],
        "contract: icc=false across hosts (A -> B)",
    );
    assert_no_ping(
        &c,
        &ns["b3"],
        &ip["a3"],
        "contract: icc=false across hosts (B -> A)",
    );
    let icc_after = drops(&c, &["icc-disabled"]);
    assert!(
        icc_after > icc_before,
        "contract: icc-disabled drops grow ({icc_before} -> {icc_after})"
    );
    assert_ping(
        &c,
        &ns["a3"],
        &a.gateway_of("n3"),
        "icc=false still lets a sandbox reach its gateway",
    );
    assert_ping(
        &c,
        &ns["a1"],
        &ip["b1"],
        "same network still works after the drops",
    );
    c.finish();
}

#[test]
fn overlay_egress_leaves_through_the_own_hosts_nat() {
    let c = Cluster::new(2);
    c.create_overlay(A, "ov", &[]);
    c.create_overlay(A, "iv", &["--internal"]);
    c.wait_visible_everywhere("ov", PROPAGATION);
    c.wait_visible_everywhere("iv", PROPAGATION);
    let sa = c.host(A).sandbox("sa");
    let sb = c.host(B).sandbox("sb");
    let si = c.host(A).sandbox("si");
    let sj = c.host(B).sandbox("sj");
    let ip_a = c.host(A).connect("ov", &sa, &[]);
    let ip_b = c.host(B).connect("ov", &sb, &[]);
    c.host(A).connect("iv", &si, &[]);
    let ip_j = c.host(B).connect("iv", &sj, &[]);

    let tcp = EchoServer::start(&c.outside_ns, Proto::Tcp, "0.0.0.0:0");
    let udp = EchoServer::start(&c.outside_ns, Proto::Udp, "0.0.0.0:0");
    for (host, s, ip) in [(A, &sa, &ip_a), (B, &sb, &ip_b)] {
        let vtep = &c.vteps[host];
        for (proto, r) in [
            ("TCP", tcp_ask(s, &c.outside_ip, tcp.port(), T)),
            ("UDP", udp_ask(s, &c.outside_ip, udp.port(), T)),
        ] {
            let r = r.unwrap_or_else(|e| {
                panic!(
                    "issue: a sandbox on an overlay network (host {host}) reaches the outside over {proto}: {e}\n{}",
                    c.diagnostics()
                )
            });
            assert_eq!(
                &r.seen_from, vtep,
                "issue: overlay egress is masqueraded by the sandbox's own host: the outside saw {} for {ip} on host {host}: {r:?}",
                r.seen_from
            );
        }
        let watch = IcmpWatch::start(&c.outside_ns);
        assert_ping(
            &c,
            s,
            &c.outside_ip,
            "ICMP from an overlay sandbox to the outside",
        );
        let srcs = watch.sources();
        assert!(
            !srcs.is_empty() && srcs.iter().all(|x| &x.to_string() == vtep),
            "issue: echo requests reach the outside from host {host}'s underlay address {vtep}: {srcs:?}"
        );
    }

    // An internal overlay network stays inside: peers across hosts yes, outside no.
    assert_ping(
        &c,
        &si,
        &ip_j,
        "internal overlay network: peer on the other host",
    );
    assert_no_ping(
        &c,
        &si,
        &c.outside_ip,
        "contract: --internal overlay networks do not reach the outside",
    );
    assert!(
        tcp_ask(&si, &c.outside_ip, tcp.port(), Duration::from_millis(1500)).is_err(),
        "contract: --internal overlay networks do not reach the outside (TCP)"
    );
    drop((tcp, udp));
    c.finish();
}

#[test]
fn concurrent_connects_on_two_hosts_never_share_an_ip() {
    const PER_HOST: usize = 8;
    let c = Cluster::new(2);
    c.create_overlay(A, "ov", &[]);
    c.wait_visible_everywhere("ov", PROPAGATION);
    let subnet = subnet_of(c.host(A), "ov");
    let mut jobs = Vec::new();
    for host in [A, B] {
        for k in 0..PER_HOST {
            let h = c.host(host);
            let s = h.sandbox(&format!("s{host}{k}"));
            jobs.push((
                host,
                s,
                h.bin.to_str().unwrap().to_string(),
                h.socket.to_str().unwrap().to_string(),
            ));
        }
    }
    let barrier = Barrier::new(jobs.len());
    let results: Vec<(usize, String, Run)> = std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(host, s, bin, socket)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let r = run_timeout(
                        bin,
                        &["--socket", socket, "network", "connect", "ov", s],
                        &[],
                        Duration::from_secs(60),
                    );
                    (*host, s.clone(), r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("connect thread"))
            .collect()
    });
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, _, r)| !r.success())
        .map(|(host, s, r)| format!("host {host} {s}: {r}"))
        .collect();
    assert!(
        failed.is_empty(),
        "issue: {} concurrent connects on two hosts must all succeed:\n{}\n{}",
        failed.len(),
        failed.join("\n"),
        c.diagnostics()
    );

    let mut ips: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut dups = Vec::new();
    for (host, s, _) in &results {
        let ip = c.host(*host).ip_of("ov", s);
        assert!(in_subnet(&ip, &subnet), "{ip} must lie in {subnet}");
        if let Some(prev) = ips.insert(ip.clone(), (*host, s.clone())) {
            dups.push(format!("{ip}: {prev:?} and host {host} {s}"));
        }
    }
    assert!(
        dups.is_empty(),
        "issue: an IP is never given twice across hosts; duplicates: {dups:?}"
    );
    let in_etcd: BTreeSet<String> = c
        .etcd_endpoint_keys()
        .iter()
        .filter_map(|k| k.rsplit('/').next().map(str::to_string))
        .collect();
    let want: BTreeSet<String> = ips.keys().cloned().collect();
    assert_eq!(
        in_etcd, want,
        "contract: one etcd record /netd/v1/endpoints/<net>/<ip> per endpoint"
    );

    let on = |host: usize| -> Vec<(String, String)> {
        results
            .iter()
            .filter(|(h, _, _)| *h == host)
            .map(|(_, s, _)| (s.clone(), c.host(host).ip_of("ov", s)))
            .collect()
    };
    let (on_a, on_b) = (on(A), on(B));
    for (_, ip) in &on_b {
        c.wait_remote(A, ip, true, PROPAGATION, "A learns every endpoint of B");
    }
    for (_, ip) in &on_a {
        c.wait_remote(B, ip, true, PROPAGATION, "B learns every endpoint of A");
    }
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = on_a
            .iter()
            .map(|(s, _)| {
                let on_b = &on_b;
                scope.spawn(move || {
                    on_b.iter()
                        .filter(|(_, ip)| !(ping_once(s, ip) || ping_once(s, ip)))
                        .map(|(_, ip)| format!("{s} -> {ip}"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("ping thread"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "issue: every sandbox on A reaches every sandbox on B; failed: {failures:?}\n{}",
        c.diagnostics()
    );
    c.finish();
}

#[test]
fn etcd_down_keeps_traffic_refuses_store_operations_and_resyncs() {
    let mut c = Cluster::new(2);
    c.create_overlay(A, "ov", &[]);
    c.wait_visible_everywhere("ov", PROPAGATION);
    let sa = c.host(A).sandbox("sa");
    let sb = c.host(B).sandbox("sb");
    let late = c.host(A).sandbox("late");
    let gone = c.host(B).sandbox("gone");
    let ip_a = c.host(A).connect("ov", &sa, &[]);
    let ip_b = c.host(B).connect("ov", &sb, &[]);
    let ip_gone = c.host(B).connect("ov", &gone, &[]);
    c.wait_remote(A, &ip_b, true, PROPAGATION, "A learns B's endpoint");
    c.wait_remote(B, &ip_a, true, PROPAGATION, "B learns A's endpoint");
    assert_ping(&c, &sa, &ip_b, "before etcd stops");
    let eps_before = c.etcd_endpoint_keys();

    let ping = background_ping(&sa, &ip_b, "0.05");
    std::thread::sleep(Duration::from_secs(1));
    let down = Instant::now();
    c.etcd.kill();

    let a = c.host(A);
    let r = a.netd_run(&["network", "connect", "ov", &late]);
    let lines = r.stderr_lines();
    assert!(
        r.code.is_some_and(|code| code != 0)
            && lines.len() == 1
            && lines[0].to_ascii_lowercase().contains("cluster store"),
        "contract: with etcd down, `network connect` on an overlay network fails with one line about the cluster store: {r}\n{}",
        a.log_text()
    );
    assert!(
        a.endpoint("ov", &late).is_none()
            && !a.link_names(&late).iter().any(|l| l.starts_with("eth")),
        "a refused connect leaves nothing behind: inspect {}, links {:?}",
        a.inspect("ov"),
        a.link_names(&late)
    );
    let r = a.netd_run(&["network", "create", "-d", "overlay", "while-down"]);
    assert!(
        r.code.is_some_and(|code| code != 0)
            && r.stderr.to_ascii_lowercase().contains("cluster store"),
        "contract: with etcd down, `network create -d overlay` fails naming the cluster store: {r}"
    );
    let r = c.host(B).netd_run(&["network", "disconnect", "ov", &gone]);
    assert!(
        r.success() && c.host(B).endpoint("ov", &gone).is_none(),
        "a disconnect does not wait for the cluster store: {r}"
    );
    assert!(
        ping_once(&sb, &ip_a),
        "issue: the dataplane keeps forwarding while etcd is down (B -> A)\n{}",
        c.diagnostics()
    );
    // Stay down longer than the lease TTL.
    let outage = CLUSTER_TTL + Duration::from_secs(2);
    std::thread::sleep(outage.saturating_sub(down.elapsed()));
    c.etcd.start();
    let back = Instant::now();

    let a = c.host(A);
    let mut last = None;
    let connected = poll(Instant::now() + RECOVERY, || {
        let r = a.netd_run(&["network", "connect", "ov", &late]);
        let ok = r.success();
        last = Some(r);
        ok
    });
    assert!(
        connected,
        "issue: after etcd is back the same connect succeeds (within {RECOVERY:?}); last try: {:?}\n{}",
        last,
        a.log_text()
    );
    let ip_late = a.ip_of("ov", &late);
    c.wait_ping(
        &sb,
        &ip_late,
        RECOVERY,
        "issue: after etcd is back, a sandbox connected then is reachable from the other host",
    );
    // Keep the traffic running past a lease TTL after etcd's return: no lease may lapse.
    std::thread::sleep((CLUSTER_TTL + Duration::from_secs(2)).saturating_sub(back.elapsed()));
    let (tx, rx, r) = stop_ping(ping);
    assert!(
        tx >= 100 && tx - rx <= 1,
        "issue: forwarding goes on while etcd is down and after it returns: {tx} sent, {rx} received (at most 1 lost)\n{r}\n{}",
        c.diagnostics()
    );
    // `gone`'s address went back at the resync: it is free again, or `late` took it since.
    let gone_key = format!("/{ip_gone}");
    let released = poll(Instant::now() + RECOVERY, || {
        ip_late == ip_gone
            || !c
                .etcd_endpoint_keys()
                .iter()
                .any(|k| k.ends_with(&gone_key))
    });
    assert!(
        released,
        "the resync gives back the address of an endpoint disconnected while etcd was down: {:?}",
        c.etcd_endpoint_keys()
    );
    let eps_after: BTreeSet<String> = c.etcd_endpoint_keys().into_iter().collect();
    for k in eps_before.iter().filter(|k| !k.ends_with(&gone_key)) {
        assert!(
            eps_after.contains(k),
            "issue: an etcd restart loses nothing: {k} is gone ({eps_after:?})"
        );
    }
    // `late` came, `gone` went.
    assert_eq!(eps_after.len(), eps_before.len(), "{eps_after:?}");
    assert_ping(&c, &sa, &ip_b, "A -> B after everything");
    c.finish();
}

#[test]
fn daemon_killed_and_restarted_loses_nothing() {
    let mut c = Cluster::new(2);
    c.create_overlay(A, "ov", &[]);
    c.wait_visible_everywhere("ov", PROPAGATION);
    let sa = c.host(A).sandbox("sa");
    let sb = c.host(B).sandbox("sb");
    let ip_a = c.host(A).connect("ov", &sa, &[]);
    let ip_b = c.host(B).connect("ov", &sb, &[]);
    c.wait_remote(A, &ip_b, true, PROPAGATION, "A learns B's endpoint");
    c.wait_remote(B, &ip_a, true, PROPAGATION, "B learns A's endpoint");
    assert_ping(&c, &sb, &ip_a, "before the kill");
    let before = views(c.host(A));

    let ping = background_ping(&sb, &ip_a, "0.02");
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    c.host_mut(A).kill9();
    assert!(
        ping_once(&sa, &ip_b),
        "issue: A's dataplane forwards while its daemon is dead (A -> B)"
    );
    std::thread::sleep(Duration::from_millis(1500));
    c.host_mut(A).start_daemon();
    // Past the lease TTL since the kill: the restarted daemon holds its host's records.
    std::thread::sleep((CLUSTER_TTL + Duration::from_secs(2)).saturating_sub(killed.elapsed()));
    let (tx, rx, r) = stop_ping(ping);
    assert!(
        tx >= 200 && tx - rx <= 1,
        "issue: traffic A <-> B keeps flowing through A's daemon kill -9 and restart: {tx} sent, {rx} received (at most 1 lost)\n{r}\n{}",
        c.diagnostics()
    );
    assert_eq!(
        before,
        views(c.host(A)),
        "issue: a restarted daemon serves the same ls/inspect/sandbox ls"
    );
    assert!(
        c.remote_endpoints(B).contains_key(&ip_a.parse().unwrap()),
        "issue: A's endpoints stay in B's REMOTE_EPS across A's restart: {:?}",
        c.remote_endpoints(B)
    );
    assert_ping(&c, &sa, &ip_b, "A -> B after the restart");

    let sc = c.host(B).sandbox("sc");
    let ip_c = c.host(B).connect("ov", &sc, &[]);
    c.wait_remote(
        A,
        &ip_c,
        true,
        PROPAGATION,
        "the restarted daemon watches again",
    );
    c.wait_ping(
        &sa,
        &ip_c,
        PROPAGATION,
        "issue: a sandbox connected on B after A's restart is reachable from A",
    );
    let sd = c.host(A).sandbox("sd");
    let ip_d = c.host(A).connect("ov", &sd, &[]);
    c.wait_ping(
        &sc,
        &ip_d,
        PROPAGATION,
        "the restarted daemon connects new sandboxes",
    );
    c.finish();
}

#[test]
fn host_removed_after_its_lease_expires_and_rejoins() {
    let mut c = Cluster::new(3);
    c.create_overlay(A, "ov", &[]);
    c.wait_visible_everywhere("ov", PROPAGATION);
    let sa = c.host(A).sandbox("sa");
    let sb = c.host(B).sandbox("sb");
    let sc = c.host(C).sandbox("sc");
    let ip_a = c.host(A).connect("ov", &sa, &[]);
    let ip_b = c.host(B).connect("ov", &sb, &[]);
    let ip_c = c.host(C).connect("ov", &sc, &[]);
    for (host, ips) in [
        (A, [&ip_b, &ip_c]),
        (B, [&ip_a, &ip_c]),
        (C, [&ip_a, &ip_b]),
    ] {
        for ip in ips {
            c.wait_remote(host, ip, true, PROPAGATION, "endpoints propagate");
        }
    }
    assert_ping(&c, &sa, &ip_b, "A -> B before");
    assert!(
        c.peer_ips(A, "ov").contains(&c.vteps[B]),
        "contract: Peers lists B while it has endpoints: {:?}",
        c.peer_ips(A, "ov")
    );

    c.host_mut(B).kill9();
    let dead = Instant::now();
    let removal = CLUSTER_TTL + Duration::from_secs(10);
    c.wait_remote(
        A,
        &ip_b,
        false,
        removal,
        "issue: a dead host's endpoints leave A's REMOTE_EPS after its lease expires",
    );
    c.wait_remote(
        C,
        &ip_b,
        false,
        removal,
        "issue: a dead host's endpoints leave C's REMOTE_EPS after its lease expires",
    );
    eprintln!("B's endpoints gone after {:?}", dead.elapsed());
    let peers_gone = poll(Instant::now() + PROPAGATION, || {
        !c.peer_ips(A, "ov").contains(&c.vteps[B])
    });
    assert!(
        peers_gone,
        "contract: Peers of A no longer lists the dead host B: {:?}",
        c.peer_ips(A, "ov")
    );
    assert!(
        !c.etcd_endpoint_keys()
            .iter()
            .any(|k| k.ends_with(&format!("/{ip_b}"))),
        "contract: the dead host's endpoint records go with its lease: {:?}",
        c.etcd_endpoint_keys()
    );
    assert!(
        c.remote_endpoints(A).contains_key(&ip_c.parse().unwrap()),
        "only the dead host's endpoints go"
    );
    assert_ping(&c, &sa, &ip_c, "A <-> C unaffected by B's death");
    assert_ping(&c, &sc, &ip_a, "C <-> A unaffected by B's death");
    assert_no_ping(
        &c,
        &sa,
        &ip_b,
        "A no longer sends to the dead host's endpoints",
    );

    c.host_mut(B).start_daemon();
    c.wait_remote(
        A,
        &ip_b,
        true,
        RECOVERY,
        "issue: a host that rejoins gets its endpoints back (A)",
    );
    c.wait_remote(
        C,
        &ip_b,
        true,
        RECOVERY,
        "issue: a host that rejoins gets its endpoints back (C)",
    );
    let remote = c.remote_endpoints(A)[&ip_b.parse().unwrap()];
    assert_eq!(
        Ipv4Addr::from(remote.vtep).to_string(),
        c.vteps[B],
        "{remote:?}"
    );
    assert!(
        poll(Instant::now() + PROPAGATION, || c
            .peer_ips(A, "ov")
            .contains(&c.vteps[B])),
        "contract: Peers lists B again: {:?}",
        c.peer_ips(A, "ov")
    );
    assert_eq!(
        c.host(B).ip_of("ov", &sb),
        ip_b,
        "the rejoined host keeps its endpoint's address"
    );
    c.wait_ping(
        &sa,
        &ip_b,
        PROPAGATION,
        "issue: traffic to the rejoined host works again",
    );
    assert_ping(&c, &sb, &ip_c, "B -> C after rejoining");
    c.finish();
}

/// A refusal: exit 1, one `Error...` line, nothing on stdout.
fn refused(h: &TestHost, args: &[&str], why: &str) -> Run {
    h.netd_refused(args, why)
}

/// Both daemons' views and etcd's overlay keys: what a refused command must not change.
fn cluster_state(c: &Cluster) -> Value {
    let keys: Vec<String> = c
        .etcd
        .keys(ETCD_PREFIX)
        .into_iter()
        .filter(|k| !k.starts_with(&format!("{ETCD_PREFIX}hosts/")))
        .collect();
    json!({ "A": snapshot(c.host(A)), "B": snapshot(c.host(B)), "etcd": keys })
}

#[test]
fn overlay_bad_input_is_refused_and_changes_nothing() {
    // Without --cluster-store: refused with one line naming the flag.
    {
        let h = TestHost::started();
        let before = snapshot(&h);
        for args in [
            vec!["network", "create", "-d", "overlay", "ov"],
            vec![
                "network",
                "create",
                "-d",
                "overlay",
                "--subnet",
                "10.0.9.0/24",
                "ov",
            ],
        ] {
            let r = refused(
                &h,
                &args,
                "issue: overlay without --cluster-store is refused",
            );
            assert!(
                r.stderr.contains("--cluster-store"),
                "issue: the refusal names --cluster-store: {r}"
            );
        }
        assert_same(&before, &snapshot(&h), "a refused overlay create");
    }

    let c = Cluster::new(2);
    c.create_overlay(A, "taken", &["--subnet", "10.0.61.0/24"]);
    let before = cluster_state(&c);
    let cases: [(&str, usize, Vec<&str>); 6] = [
        ("subnet not a CIDR", B, vec!["--subnet", "banana", "x"]),
        (
            "subnet prefix /33",
            A,
            vec!["--subnet", "10.0.62.0/33", "x"],
        ),
        (
            "subnet with host bits",
            B,
            vec!["--subnet", "10.0.62.1/24", "x"],
        ),
        (
            "duplicate name created on another host",
            B,
            vec!["--subnet", "10.0.63.0/24", "taken"],
        ),
        (
            "duplicate name on the same host",
            A,
            vec!["--subnet", "10.0.63.0/24", "taken"],
        ),
        (
            "subnet of another host's overlay network",
            B,
            vec!["--subnet", "10.0.61.0/24", "other"],
        ),
    ];
    let mut failures = Vec::new();
    for (what, host, extra) in &cases {
        let mut args = vec!["network", "create", "-d", "overlay"];
        args.extend_from_slice(extra);
        let h = c.host(*host);
        let r = h.netd_run(&args);
        let lines = r.stderr_lines();
        if !(r.code == Some(1) && lines.len() == 1 && lines[0].starts_with("Error")) {
            failures.push(format!("[{what}] want exit 1 and one Error line: {r}"));
            continue;
        }
        let after = cluster_state(&c);
        if after != before {
            failures.push(format!(
                "[{what}] state changed:\n--- before ---\n{}\n--- after ---\n{}",
                serde_json::to_string_pretty(&before).unwrap(),
                serde_json::to_string_pretty(&after).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad overlay creates were not refused cleanly:\n{}\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n"),
        c.diagnostics()
    );

    // rm while another host has endpoints on the network: refused on both hosts.
    c.wait_visible_everywhere("taken", PROPAGATION);
    let sb = c.host(B).sandbox("sb");
    let ip_b = c.host(B).connect("taken", &sb, &[]);
    c.wait_remote(A, &ip_b, true, PROPAGATION, "A learns B's endpoint");
    refused(
        c.host(A),
        &["network", "rm", "taken"],
        "contract: rm is refused while any host has endpoints on the network",
    );
    refused(
        c.host(B),
        &["network", "rm", "taken"],
        "rm is refused on the host with the endpoints",
    );
    for h in &c.hosts {
        assert!(
            h.network_names().contains(&"taken".to_string()),
            "a refused rm removes nothing: {:?}",
            h.network_names()
        );
    }
    let sa = c.host(A).sandbox("sa");
    c.host(A).connect("taken", &sa, &[]);
    c.wait_ping(
        &sa,
        &ip_b,
        PROPAGATION,
        "the network still works after the refused rm",
    );
    c.finish();
}
