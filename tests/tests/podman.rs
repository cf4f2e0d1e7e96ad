//! podman 4.3 with its CNI backend on netd (issue 6): `podman run --network NET` where NET
//! is a conflist whose plugin is `netd` (the `netd-cni` under test).
//!
//! Where things run: podman (and so conmon and the plugin it executes) runs inside the
//! test's host netns (`nsenter --net`), next to the test daemon. Podman makes each
//! container's netns itself (`/run/netns/netns-<uuid>`) and hands it to the plugin as
//! CNI_NETNS; the daemon builds the veth between its own netns and that one. Nothing
//! happens in the machine's root netns: rootful podman holds every published host port
//! open in conmon (`0.0.0.0:PORT`), and that socket lands in the test's namespace.
//!
//! Covered: a network made by the plugin on the first ADD and one made with
//! `netd network create`; ping and TCP (busybox httpd and nc) between containers by IP;
//! isolation between two netd networks; a published port (`podman run -p`) reached from
//! an outside namespace through `--uplink`; a daemon restart under running containers;
//! `podman rm -f` (CNI DEL) leaving no veth and no endpoint.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::cni::{Container, Podman, IMAGE};
use netd_tests::harness::netns::in_netns;
use netd_tests::harness::{Run, TestHost};
use serde_json::{json, Value};

/// The container's main process: serve `hello-<name>` on port 80 (busybox httpd, which
/// daemonizes) and live for at most 5 minutes.
fn web(name: &str) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "mkdir -p /www && echo hello-{name} > /www/index.html && httpd -p 80 -h /www && exec sleep 300"
        ),
    ]
}

/// Starts container `name` on `network` running [`web`].
fn start_web(p: &Podman, name: &str, network: &str, extra: &[&str]) -> Container {
    let cmd = web(name);
    let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let c = p.start(name, network, extra, &refs);
    assert!(
        c.ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "podman reports no IPv4 address for {name} on {network}: {c:?}\n{}",
        p.try_inspect(name).unwrap_or_default()
    );
    c
}

/// `GET /index.html` with busybox nc from inside container `from`.
fn http_from(p: &Podman, from: &str, ip: &str) -> Run {
    p.exec(
        from,
        &[
            "sh",
            "-c",
            &format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 80"),
        ],
    )
}

/// busybox ping from inside container `from`; true if a reply came.
fn ping_from(p: &Podman, from: &str, ip: &str) -> bool {
    p.exec(from, &["ping", "-c", "2", "-W", "1", ip]).success()
}

/// `GET /index.html` over TCP from netns `ns` to `ip:port`; the body.
fn http_in_netns(ns: &str, ip: &str, port: u16) -> Result<String, String> {
    let addr: std::net::SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("{ip}:{port}: {e}"))?;
    in_netns(ns, Duration::from_secs(8), move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3))
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut out = String::new();
        s.read_to_string(&mut out)
            .map_err(|e| format!("read from {addr}: {e} (got {out:?})"))?;
        Ok(out)
    })
}

/// The netd attachment of podman container `c` on `net`, by its CNI container id.
fn endpoint_of(h: &TestHost, net: &str, c: &Container) -> Option<Value> {
    h.cni_endpoint(net, &c.id, Some("eth0"))
}

/// Asserts container `c` is attached to `net` in netd with the address podman reports.
fn assert_attached(h: &TestHost, p: &Podman, net: &str, c: &Container) {
    let ep = endpoint_of(h, net, c).unwrap_or_else(|| {
        panic!(
            "netd inspect {net} has no attachment with ContainerID {} ({}): {}\npodman: {}\n{}",
            c.id,
            c.name,
            h.inspect(net),
            p.try_inspect(&c.name).unwrap_or_default(),
            h.log_text()
        )
    });
    assert_eq!(
        ep["IPv4Address"].as_str().and_then(|a| a.split('/').next()),
        Some(c.ip.as_str()),
        "podman and netd disagree on {}'s address: {ep}",
        c.name
    );
}

#[test]
fn containers_on_a_network_made_by_the_plugin_talk_and_rm_detaches_them() {
    let h = TestHost::started();
    let p = Podman::new(&h);
    let net = format!("{}a", h.id);
    p.add_network(
        &net,
        json!({"subnet": h.subnet(1), "gateway": h.addr(1, 1), "capabilities": {"portMappings": true, "aliases": true}}),
    );
    let a1 = start_web(&p, "a1", &net, &["--network-alias", "first"]);
    let a2 = start_web(&p, "a2", &net, &[]);

    // The plugin made the network from the conflist on the first ADD.
    let v = h.inspect(&net);
    assert_eq!(
        v["IPAM"]["Config"][0]["Subnet"].as_str(),
        Some(h.subnet(1).as_str()),
        "the network made on first ADD has the conflist's subnet: {v}"
    );
    for c in [&a1, &a2] {
        assert_attached(&h, &p, &net, c);
        assert!(
            c.ip.starts_with(&format!("10.{}.1.", h.octet())),
            "{} got {} outside {}",
            c.name,
            c.ip,
            h.subnet(1)
        );
    }
    let aliases = endpoint_of(&h, &net, &a1).unwrap_or_default()["Aliases"].clone();
    assert!(
        aliases
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "first")),
        "podman's --network-alias reaches netd (runtimeConfig.aliases): {aliases}"
    );

    assert!(
        ping_from(&p, "a1", &a2.ip),
        "a1 pings a2 at {}\n{}",
        a2.ip,
        h.diagnostics(&[&a1.netns, &a2.netns])
    );
    assert!(ping_from(&p, "a2", &a1.ip), "a2 pings a1 at {}", a1.ip);
    assert!(ping_from(&p, "a1", &h.addr(1, 1)), "a1 pings its gateway");
    let r = http_from(&p, "a1", &a2.ip);
    assert!(
        r.success() && r.stdout.contains("hello-a2"),
        "TCP a1 -> a2:80: {r}"
    );
    let r = http_from(&p, "a2", &a1.ip);
    assert!(
        r.success() && r.stdout.contains("hello-a1"),
        "TCP a2 -> a1:80: {r}"
    );
    assert_consistent(&h);

    // podman rm -f: CNI DEL removes a2's veth and endpoint; a1 is untouched.
    let veths = h.host_veths();
    assert_eq!(veths.len(), 2, "one host veth per container: {veths:?}");
    let r = p.rm("a2");
    assert!(r.success(), "podman rm -f a2: {r}");
    assert!(
        endpoint_of(&h, &net, &a2).is_none(),
        "podman rm -f a2 left its netd endpoint: {}",
        h.inspect(&net)
    );
    assert_eq!(h.host_veths().len(), 1, "podman rm -f a2 left its veth");
    assert!(
        !std::path::Path::new("/run/netns").join(&a2.netns).exists(),
        "podman removes a2's netns"
    );
    assert!(
        ping_from(&p, "a1", &h.addr(1, 1)),
        "a1 still reaches its gateway"
    );
    assert!(
        !ping_from(&p, "a1", &a2.ip),
        "a2's address no longer answers"
    );
    let r = p.rm("a1");
    assert!(r.success(), "podman rm -f a1: {r}");
    assert_eq!(
        h.host_veths(),
        Vec::<String>::new(),
        "no veth left after rm of every container"
    );
    assert_consistent(&h);
}

#[test]
fn a_network_made_with_netd_network_create_and_isolation_between_networks() {
    let h = TestHost::started();
    let p = Podman::new(&h);
    // B exists in netd first; its conflist names it and nothing else.
    let net_a = format!("{}a", h.id);
    let net_b = format!("{}b", h.id);
    h.create_network(&net_b, 2, &["--gateway", &h.addr(2, 254)]);
    p.add_network(&net_a, json!({"subnet": h.subnet(1)}));
    p.add_network(&net_b, json!({}));

    let a1 = start_web(&p, "a1", &net_a, &[]);
    let b1 = start_web(&p, "b1", &net_b, &[]);
    let b2 = start_web(&p, "b2", &net_b, &[]);
    for c in [&b1, &b2] {
        assert_attached(&h, &p, &net_b, c);
        assert!(
            c.ip.starts_with(&format!("10.{}.2.", h.octet())),
            "{} on the netd-made network got {} outside {}",
            c.name,
            c.ip,
            h.subnet(2)
        );
    }
    let gw_b = p.try_inspect("b1").unwrap_or_default()["NetworkSettings"]["Networks"][&net_b]
        ["Gateway"]
        .clone();
    assert_eq!(
        gw_b.as_str(),
        Some(h.addr(2, 254).as_str()),
        "podman learns the netd network's gateway from the result"
    );
    assert_attached(&h, &p, &net_a, &a1);
    assert_eq!(
        h.network_names().len(),
        5,
        "bridge, host, none and the two networks: {:?}",
        h.network_names()
    );

    assert!(
        ping_from(&p, "b1", &b2.ip),
        "b1 pings b2 on the netd-made network"
    );
    let r = http_from(&p, "b2", &b1.ip);
    assert!(
        r.success() && r.stdout.contains("hello-b1"),
        "TCP b2 -> b1: {r}"
    );

    // A container on both networks (one interface on each; podman picks which is eth0)
    // reaches both sides.
    let ab = start_web(&p, "ab", &net_a, &["--network", &net_b]);
    let if_a = h
        .cni_endpoint(&net_a, &ab.id, None)
        .map(|e| e["Interface"].clone());
    let if_b = h
        .cni_endpoint(&net_b, &ab.id, None)
        .map(|e| e["Interface"].clone());
    assert!(
        if_a.is_some() && if_b.is_some() && if_a != if_b,
        "podman --network A --network B: one attachment on each network, different interfaces ({if_a:?}, {if_b:?}): {}\n{}",
        h.inspect(&net_a),
        h.inspect(&net_b)
    );
    assert!(ping_from(&p, "ab", &a1.ip), "ab reaches a1 on A");
    assert!(ping_from(&p, "ab", &b1.ip), "ab reaches b1 on B");

    // Isolation: nothing crosses between A and B.
    assert!(!ping_from(&p, "a1", &b1.ip), "a1 (A) must not reach b1 (B)");
    assert!(!ping_from(&p, "b1", &a1.ip), "b1 (B) must not reach a1 (A)");
    let r = http_from(&p, "a1", &b1.ip);
    assert!(
        !r.stdout.contains("hello-b1"),
        "TCP a1 (A) -> b1 (B) must fail: {r}"
    );
    assert_consistent(&h);
}

#[test]
fn a_published_port_is_reached_from_outside() {
    let (h, o) = TestHost::with_uplink(&[]);
    let p = Podman::new(&h);
    let net = format!("{}p", h.id);
    p.add_network(
        &net,
        json!({"subnet": h.subnet(1), "capabilities": {"portMappings": true}}),
    );
    let c = start_web(&p, "web", &net, &["-p", "18080:80/tcp"]);
    assert_attached(&h, &p, &net, &c);
    let ports = h.port_ls(None);
    assert!(
        ports.contains("80/tcp -> 0.0.0.0:18080"),
        "podman -p reaches netd as a published port: `netd port ls`:\n{ports}"
    );
    match http_in_netns(&o.ns, &o.host_ip, 18080) {
        Ok(body) => assert!(
            body.contains("hello-web"),
            "outside -> {}:18080 answered, but not from the container: {body:?}",
            o.host_ip
        ),
        Err(e) => panic!(
            "outside -> {}:18080 (podman run -p 18080:80): {e}\n{}\n{}",
            o.host_ip,
            h.diagnostics(&[&o.ns, &c.netns]),
            h.log_text()
        ),
    }
    // From the host itself, where conmon holds 0.0.0.0:18080 open as podman's reservation.
    match http_in_netns(&h.host_ns, "127.0.0.1", 18080) {
        Ok(body) => assert!(
            body.contains("hello-web"),
            "host -> 127.0.0.1:18080 answered, but not from the container: {body:?}"
        ),
        Err(e) => panic!(
            "host netns -> 127.0.0.1:18080 (podman run -p 18080:80; conmon holds the port open): {e}\n{}",
            h.log_text()
        ),
    }
    let r = p.rm("web");
    assert!(r.success(), "podman rm -f web: {r}");
    assert!(
        h.port_ls(None).trim().is_empty(),
        "podman rm removes the published port: {}",
        h.port_ls(None)
    );
    assert!(
        http_in_netns(&o.ns, &o.host_ip, 18080).is_err(),
        "the port is closed after podman rm"
    );
    assert_eq!(
        h.host_veths(),
        Vec::<String>::new(),
        "no veth left after podman rm"
    );
    assert_consistent(&h);
}

#[test]
fn containers_keep_working_across_a_daemon_restart() {
    let mut h = TestHost::started();
    let p = Podman::new(&h);
    let net = format!("{}r", h.id);
    p.add_network(&net, json!({"subnet": h.subnet(1)}));
    let c1 = start_web(&p, "c1", &net, &[]);
    let c2 = start_web(&p, "c2", &net, &[]);
    assert!(
        ping_from(&p, "c1", &c2.ip),
        "c1 pings c2 before the restart"
    );

    h.restart();
    assert!(
        ping_from(&p, "c1", &c2.ip),
        "c1 pings c2 after a daemon restart\n{}",
        h.log_text()
    );
    let r = http_from(&p, "c2", &c1.ip);
    assert!(
        r.success() && r.stdout.contains("hello-c1"),
        "TCP c2 -> c1 after the restart: {r}"
    );
    // A new container after the restart, and a DEL of one made before it.
    let c3 = start_web(&p, "c3", &net, &[]);
    assert_attached(&h, &p, &net, &c3);
    assert!(ping_from(&p, "c3", &c1.ip), "c3 (after) pings c1 (before)");
    let r = p.rm("c2");
    assert!(r.success(), "podman rm -f c2 after the restart: {r}");
    assert!(
        endpoint_of(&h, &net, &c2).is_none(),
        "podman rm after a restart removes the endpoint: {}",
        h.inspect(&net)
    );
    assert_eq!(
        h.host_veths().len(),
        2,
        "c2's veth is gone: {:?}",
        h.host_veths()
    );
    assert_consistent(&h);
}

#[test]
fn podman_static_ip_and_mac_reach_netd() {
    let h = TestHost::started();
    let p = Podman::new(&h);
    let net = format!("{}s", h.id);
    p.add_network(
        &net,
        json!({"subnet": h.subnet(1), "capabilities": {"ips": true, "mac": true}}),
    );
    // podman 4.3 sends one static IP and the MAC as CNI_ARGS (IP=, MAC=).
    let ip = h.addr(1, 50);
    let mac = "02:aa:bb:cc:dd:ee";
    let c = start_web(&p, "st", &net, &["--ip", &ip, "--mac-address", mac]);
    assert_eq!(c.ip, ip, "podman --ip: the container's address");
    let ep =
        endpoint_of(&h, &net, &c).unwrap_or_else(|| panic!("no endpoint: {}", h.inspect(&net)));
    assert_eq!(
        ep["IPv4Address"].as_str(),
        Some(format!("{ip}/24").as_str()),
        "netd gives the address podman asked for: {ep}"
    );
    assert_eq!(
        ep["MacAddress"].as_str(),
        Some(mac),
        "netd sets podman's --mac-address: {ep}"
    );
    let r = p.exec("st", &["cat", "/sys/class/net/eth0/address"]);
    assert_eq!(r.stdout.trim(), mac, "the container's eth0 MAC: {r}");
    let other = start_web(&p, "dyn", &net, &[]);
    assert_ne!(other.ip, ip, "a dynamic address never takes a static one");
    assert!(
        ping_from(&p, "dyn", &ip),
        "dyn pings st at its static address"
    );
    assert_consistent(&h);
}

#[test]
fn a_failing_add_fails_podman_run_and_leaves_nothing() {
    let mut h = TestHost::started();
    let p = Podman::new(&h);
    // The conflist's subnet disagrees with the existing netd network: ADD refuses it.
    let net = format!("{}f", h.id);
    h.create_network(&net, 2, &[]);
    p.add_network(&net, json!({"subnet": h.subnet(3)}));
    let r = p.run(&[
        "run",
        "-d",
        "--name",
        "bad",
        "--network",
        &net,
        IMAGE,
        "sleep",
        "300",
    ]);
    assert!(!r.success(), "podman run must fail when ADD fails: {r}");
    assert!(
        r.stderr.contains(&h.subnet(3)),
        "podman shows the plugin's message (naming the subnet): {r}"
    );
    assert_eq!(
        h.host_veths(),
        Vec::<String>::new(),
        "a refused ADD leaves no veth"
    );
    assert!(
        h.inspect(&net)["Containers"]
            .as_object()
            .is_some_and(|m| m.is_empty()),
        "a refused ADD leaves no endpoint: {}",
        h.inspect(&net)
    );
    assert_eq!(running(&p), 0, "nothing runs after a failed podman run");

    // Daemon down: ADD says "try again later"; podman start works once it is back.
    let good = format!("{}g", h.id);
    p.add_network(&good, json!({"subnet": h.subnet(4)}));
    h.stop();
    let r = p.run(&[
        "run",
        "-d",
        "--name",
        "later",
        "--network",
        &good,
        IMAGE,
        "sleep",
        "300",
    ]);
    assert!(
        !r.success(),
        "podman run must fail with the daemon down: {r}"
    );
    assert_eq!(running(&p), 0, "nothing runs after a failed podman run");
    h.start_daemon();
    let r = p.run(&["start", "later"]);
    assert!(
        r.success(),
        "podman start once the daemon is back: {r}\n{}",
        h.log_text()
    );
    let v = p.try_inspect("later").unwrap_or_default();
    let id = v["Id"].as_str().unwrap_or_default().to_string();
    assert!(
        h.cni_endpoint(&good, &id, Some("eth0")).is_some(),
        "the started container is attached: {}",
        h.inspect(&good)
    );
    assert_eq!(
        h.host_veths().len(),
        1,
        "exactly one veth: {:?}",
        h.host_veths()
    );
    assert!(p.rm("later").success(), "podman rm -f later");
    assert_eq!(h.host_veths(), Vec::<String>::new(), "no veth after rm");
    assert_consistent(&h);
}

/// Containers podman reports running.
fn running(p: &Podman) -> usize {
    p.ok(&["ps", "-q"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}
