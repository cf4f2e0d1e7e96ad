//! Docker with netd as its network and IPAM driver (issue 6), with real containers: each
//! test runs a dockerd of its own inside its host netns (see `harness::engines`), next to
//! a netd daemon whose Docker plugin socket is `/run/docker/plugins/<test id>.sock`, so the
//! Docker driver is named after the test. Containers run the busybox image; they talk with
//! busybox `ping`, `wget`, `nc` and `httpd`, and resolve each other through Docker's
//! embedded DNS.
//!
//! Covered: containers on a netd network reach each other by address and by name through
//! netd's veths (no Linux bridge); `netd network ls`/`inspect` show Docker's networks and
//! endpoints; isolation between netd networks and from docker0; `enable_icc=false`;
//! `--internal`; `-p` from the outside and from the host; `docker network
//! connect/disconnect`; daemon restarts and crashes under running containers; `docker
//! network rm` of a network in use; Docker's own IPAM with netd's driver.
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use netd_tests::harness::check::consistency;
use netd_tests::harness::engines::{Dockerd, BUSYBOX_IMAGE};
use netd_tests::harness::netns::{in_netns, EchoServer, Proto};
use netd_tests::harness::{Outside, TestHost, UPLINK_IF};
use serde_json::Value;

/// Deadline of one `docker exec` that must work.
const T: Duration = Duration::from_secs(15);
/// Deadline of one HTTP exchange that must work.
const T_HTTP: Duration = Duration::from_secs(5);
/// A TCP port of an echo server in the outside namespace.
const OUTSIDE_PORT: u16 = 7000;

/// One test's world: a dockerd and a netd daemon (with an uplink to an outside namespace)
/// in the test's host netns. `d` is declared first so it is dropped first: containers go
/// while the netd daemon still answers Docker's calls.
struct World {
    d: Dockerd,
    h: TestHost,
    o: Outside,
    /// The Docker driver (and IPAM driver) name of this test's netd: the test id.
    driver: String,
    started: Instant,
}

fn world() -> World {
    let started = Instant::now();
    let mut h = TestHost::new();
    let o = h.add_outside();
    let driver = h.id.clone();
    h.set_docker_plugin_socket(format!("/run/docker/plugins/{driver}.sock"));
    let d = Dockerd::start(&h);
    let docker_host = d.host_arg.clone();
    h.start_daemon_with_args(&["--uplink", UPLINK_IF, "--docker-host", &docker_host]);
    World {
        d,
        h,
        o,
        driver,
        started,
    }
}

impl World {
    /// `docker network create -d <driver> --ipam-driver <driver> --subnet <subnet n>
    /// [extra...] NAME`; returns Docker's network id.
    fn create_net(&self, name: &str, n: u8, extra: &[&str]) -> String {
        let subnet = self.h.subnet(n);
        let mut args = vec![
            "network",
            "create",
            "-d",
            &self.driver,
            "--ipam-driver",
            &self.driver,
            "--subnet",
            &subnet,
        ];
        args.extend_from_slice(extra);
        args.push(name);
        self.docker_ok(&args)
    }

    /// Runs the docker CLI; panics with both daemons' logs unless it exits 0.
    fn docker_ok(&self, args: &[&str]) -> String {
        let r = self.d.docker(args);
        assert!(
            r.success(),
            "docker CLI failed: {r}\n{}\n{}",
            self.d.log_text(),
            self.h.log_text()
        );
        r.stdout.trim().to_string()
    }

    /// A container serving HTTP on port 80; the page is its own name.
    fn web(&self, name: &str, opts: &[&str]) -> String {
        let script = format!(
            "mkdir -p /www && echo {name} > /www/index.html && exec httpd -f -p 80 -h /www"
        );
        self.run(name, opts, &["sh", "-c", &script])
    }

    /// A container that only sleeps (a client).
    fn idle(&self, name: &str, opts: &[&str]) -> String {
        self.run(name, opts, &["sleep", "600"])
    }

    fn run(&self, name: &str, opts: &[&str], argv: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(opts);
        args.push(BUSYBOX_IMAGE);
        args.extend_from_slice(argv);
        self.docker_ok(&args)
    }

    /// One ping from container `from` to `to` (name or address), tried twice.
    fn ping(&self, from: &str, to: &str) -> bool {
        (0..2).any(|_| {
            self.d
                .exec(from, &["ping", "-c", "1", "-W", "2", to], T)
                .success()
        })
    }

    /// One ping that must not be answered: true if it was.
    fn pings_once(&self, from: &str, to: &str) -> bool {
        self.d
            .exec(from, &["ping", "-c", "2", "-W", "1", to], T)
            .success()
    }

    /// `wget` of `http://to:port/` from container `from`; the page, trimmed.
    fn http(&self, from: &str, to: &str, port: u16) -> Result<String, String> {
        self.http_within(from, to, port, 5)
    }

    /// [`World::http`] giving up after `secs` (for exchanges that must fail).
    fn http_within(&self, from: &str, to: &str, port: u16, secs: u32) -> Result<String, String> {
        // busybox 1.35's `wget -T` crashes: bound it with `timeout` instead.
        let url = format!("http://{to}:{port}/");
        let secs = secs.to_string();
        let r = self
            .d
            .exec(from, &["timeout", &secs, "wget", "-q", "-O", "-", &url], T);
        if r.success() {
            Ok(r.stdout.trim().to_string())
        } else {
            Err(r.to_string())
        }
    }

    /// A raw HTTP request with busybox `nc` from container `from`; the reply.
    fn nc_http(&self, from: &str, to: &str, port: u16) -> String {
        let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 5 nc -w 3 {to} {port}");
        self.d.sh(from, &script, T).stdout
    }

    /// A line sent with busybox `nc` to the outside's echo server; its answer (empty if none).
    fn nc_outside(&self, from: &str) -> String {
        let script = format!(
            "echo hello | timeout 3 nc -w 2 {} {OUTSIDE_PORT}",
            self.o.ip
        );
        self.d.sh(from, &script, T).stdout.trim().to_string()
    }

    /// `docker network inspect NAME`.
    fn docker_net(&self, name: &str) -> Value {
        self.d.inspect(&["--type", "network", name])
    }

    /// Docker's endpoint id of container `name` on `network`.
    fn endpoint_id(&self, name: &str, network: &str) -> String {
        let v = self.d.inspect(&["--type", "container", name]);
        let id = v["NetworkSettings"]["Networks"][network]["EndpointID"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            id.len() >= 12,
            "container {name} has no EndpointID on {network}: {}",
            v["NetworkSettings"]["Networks"]
        );
        id
    }

    /// The `Containers` entry of netd's `network inspect NET` whose IPv4 address is `ip`.
    fn netd_endpoint(&self, net: &str, ip: &str) -> Option<Value> {
        let v = self.h.inspect(net);
        v["Containers"].as_object().and_then(|m| {
            m.values()
                .find(|c| c["IPv4Address"].as_str().and_then(|a| a.split('/').next()) == Some(ip))
                .cloned()
        })
    }

    /// Number of endpoints netd's `network inspect NET` lists.
    fn netd_endpoints(&self, net: &str) -> usize {
        let v = self.h.inspect(net);
        v["Containers"].as_object().map_or(0, |m| m.len())
    }

    /// Link names in the host netns.
    fn host_links(&self) -> Vec<String> {
        self.h.link_names(&self.h.host_ns)
    }
}

/// Collects every failed expectation of a test so one run reports all of them.
struct Checks<'a> {
    w: &'a World,
    failures: Vec<String>,
}

impl<'a> Checks<'a> {
    fn new(w: &'a World) -> Self {
        Checks {
            w,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, what: &str, ok: bool) {
        if !ok {
            self.failures.push(format!("[{what}]"));
        }
    }

    fn ok<T>(&mut self, what: &str, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.failures.push(format!("[{what}] {e}"));
                None
            }
        }
    }

    /// Container `from` reaches `to` by ping.
    fn reach(&mut self, from: &str, to: &str, why: &str) {
        let ok = self.w.ping(from, to);
        self.check(&format!("{why}: ping {from} -> {to} must work"), ok);
    }

    /// Container `from` does not reach `to` by ping.
    fn no_reach(&mut self, from: &str, to: &str, why: &str) {
        let answered = self.w.pings_once(from, to);
        self.check(
            &format!("{why}: ping {from} -> {to} must not be answered"),
            !answered,
        );
    }

    /// `http://to/` from container `from` serves `want`.
    fn page(&mut self, from: &str, to: &str, port: u16, want: &str, why: &str) {
        let what = format!("{why}: wget http://{to}:{port}/ from {from} serves {want:?}");
        if let Some(page) = self.ok(&what, self.w.http(from, to, port)) {
            self.check(&format!("{what}, got {page:?}"), page == want);
        }
    }

    /// netd's state agrees with the kernel and maps (nothing leaked or missing).
    fn consistent(&mut self, when: &str) {
        if let Err(e) = consistency(&self.w.h) {
            self.failures.push(format!(
                "[netd's state is consistent {when}] {e}\ninspect: {}",
                serde_json::to_string_pretty(&self.w.h.inspect_all()).unwrap_or_default()
            ));
        }
    }

    fn finish(self) {
        let took = self.w.started.elapsed();
        if self.failures.is_empty() {
            eprintln!("{} passed in {took:?}", self.w.h.id);
            return;
        }
        let w = self.w;
        panic!(
            "{} expectation(s) failed (after {took:?}):\n{}\n\ndocker ps:\n{}\n{}\n{}\n{}",
            self.failures.len(),
            self.failures.join("\n"),
            w.d.docker(&["ps", "-a"]).stdout,
            w.h.diagnostics(&[&w.o.ns]),
            w.d.log_text(),
            w.h.log_text()
        );
    }
}

/// `GET /` over TCP from netns `ns`; the body, trimmed.
fn http_get(ns: &str, ip: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("{ip}:{port}: {e}"))?;
    in_netns(ns, timeout * 2 + Duration::from_secs(2), move || {
        let mut s = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.write_all(b"GET / HTTP/1.0\r\n\r\n")
            .map_err(|e| format!("send to {addr}: {e}"))?;
        let mut reply = String::new();
        s.read_to_string(&mut reply)
            .map_err(|e| format!("read from {addr}: {e}"))?;
        match reply.split_once("\r\n\r\n") {
            Some((head, body)) if head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
                Ok(body.trim().to_string())
            }
            _ => Err(format!("not an HTTP 200 reply from {addr}: {reply:?}")),
        }
    })
}

/// Does `addr` (no prefix) lie in the /24 `subnet` (`a.b.c.0/24`)?
fn in_24(addr: &str, subnet: &str) -> bool {
    let net = subnet.trim_end_matches("0/24");
    addr.starts_with(net) && addr.len() > net.len()
}

#[test]
fn dockerd_runs_in_the_test_netns_on_docker0() {
    let h = TestHost::new();
    let d = Dockerd::start(&h);
    let ns_of =
        |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    let dockerd_ns = ns_of(&format!("/proc/{}/ns/net", d.pid()));
    let test_ns = ns_of(&format!("/run/netns/{}", h.host_ns));
    assert!(
        dockerd_ns.is_ok() && dockerd_ns.as_ref().ok() == test_ns.as_ref().ok(),
        "dockerd must run in the test's host netns: {dockerd_ns:?} vs {test_ns:?}"
    );
    assert!(
        h.link_names(&h.host_ns).iter().any(|l| l == "docker0"),
        "docker0 is in the test's host netns"
    );
    let r = d.docker(&["run", "--rm", BUSYBOX_IMAGE, "sh", "-c", "ip addr"]);
    assert!(r.success(), "{r}\n{}", d.log_text());
    let prefix = d.docker0_gateway.trim_end_matches(".1");
    assert!(
        r.stdout.contains(&format!("inet {prefix}.")),
        "the container has no address on docker0 ({}): {r}",
        d.docker0_subnet
    );
    d.run_detached("z1", &[], &["sleep", "600"]);
    d.run_detached("z2", &[], &["sleep", "600"]);
    let ip1 = d.container_ip("z1", "bridge");
    let r = d.exec("z2", &["ping", "-c", "2", "-W", "2", &ip1], T);
    assert!(r.success(), "z2 -> z1 on docker0: {r}\n{}", d.log_text());
}

#[test]
fn containers_talk_by_address_and_name_through_netds_veths() {
    let w = world();
    let net_id = w.create_net("front", 1, &[]);
    w.web("web1", &["--network", "front"]);
    w.web("web2", &["--network", "front"]);
    w.idle("cli1", &["--network", "front"]);
    let subnet = w.h.subnet(1);
    let ip1 = w.d.container_ip("web1", "front");
    let ip2 = w.d.container_ip("web2", "front");
    let ipc = w.d.container_ip("cli1", "front");
    let mut ck = Checks::new(&w);
    for ip in [&ip1, &ip2, &ipc] {
        ck.check(
            &format!("container address {ip} lies in --subnet {subnet}"),
            in_24(ip, &subnet),
        );
    }

    // Traffic, by address and by name (Docker's embedded DNS).
    ck.reach("cli1", &ip1, "same netd network, by address");
    ck.reach("cli1", "web1", "same netd network, by name");
    ck.reach("web2", "web1", "same netd network, by name");
    ck.page("cli1", &ip1, 80, "web1", "TCP by address");
    ck.page("cli1", "web1", 80, "web1", "TCP by name");
    ck.page("web1", "web2", 80, "web2", "TCP by name, the other way");
    let raw = w.nc_http("cli1", "web2", 80);
    ck.check(
        &format!("busybox nc cli1 -> web2:80 gets HTTP 200 and web2's page: {raw:?}"),
        raw.starts_with("HTTP/1.") && raw.contains(" 200 ") && raw.trim_end().ends_with("web2"),
    );
    let gw = w.h.gateway_of("front");
    let route = w.d.exec("cli1", &["ip", "route"], T).stdout;
    ck.check(
        &format!("cli1's default route goes via netd's gateway {gw}: {route:?}"),
        route
            .lines()
            .any(|l| l.starts_with(&format!("default via {gw} "))),
    );

    // netd's view: the network (Docker's name) and its three endpoints.
    let names = w.h.network_names();
    ck.check(
        &format!(
            "`netd network ls` lists Docker's network by its Docker name \"front\": {names:?}"
        ),
        names.iter().any(|n| n == "front"),
    );
    if names.iter().any(|n| n == "front") {
        let v = w.h.inspect("front");
        ck.check(
            &format!("netd inspect front: IPAM subnet {subnet}: {}", v["IPAM"]),
            v["IPAM"]["Config"][0]["Subnet"].as_str() == Some(subnet.as_str()),
        );
        for (c, ip) in [("web1", &ip1), ("web2", &ip2), ("cli1", &ipc)] {
            ck.check(
                &format!(
                    "netd inspect front lists {c}'s endpoint {ip}: {}",
                    v["Containers"]
                ),
                w.netd_endpoint("front", ip).is_some(),
            );
        }
        ck.check(
            "netd inspect front lists exactly 3 endpoints",
            w.netd_endpoints("front") == 3,
        );
    }

    // Docker's view: its driver, and the same gateway.
    let dn = w.docker_net("front");
    ck.check(
        &format!(
            "docker network inspect front: Driver is {}: {}",
            w.driver, dn["Driver"]
        ),
        dn["Driver"].as_str() == Some(w.driver.as_str()),
    );
    // (Docker shows only the IPAM config it was given: no gateway here.)
    ck.check(
        &format!(
            "docker network inspect front: IPAM driver {}: {}",
            w.driver, dn["IPAM"]
        ),
        dn["IPAM"]["Driver"].as_str() == Some(w.driver.as_str()),
    );

    // The kernel: one `nd<endpoint id>` veth per container, on no bridge; no br- device.
    let links = w.h.links(&w.h.host_ns);
    for c in ["web1", "web2", "cli1"] {
        let veth = format!("nd{}", &w.endpoint_id(c, "front")[..12]);
        let link = links
            .iter()
            .find(|l| l["ifname"].as_str() == Some(veth.as_str()));
        ck.check(
            &format!("{c}'s host-side veth is netd's {veth}"),
            link.is_some(),
        );
        if let Some(l) = link {
            ck.check(
                &format!("{veth} is enslaved to no bridge: {l}"),
                l.get("master").is_none(),
            );
        }
    }
    let names = w.host_links();
    ck.check(
        &format!(
            "no Linux bridge for Docker network {}: host links {names:?}",
            &net_id[..12]
        ),
        !names.iter().any(|n| n.starts_with("br-")),
    );
    ck.check(
        &format!(
            "exactly 3 nd veths in the host netns: {:?}",
            w.h.host_veths()
        ),
        w.h.host_veths().len() == 3,
    );
    ck.consistent("with three containers");
    ck.finish();
}

#[test]
fn netd_networks_are_isolated_from_each_other_and_from_docker0() {
    let w = world();
    w.create_net("neta", 1, &[]);
    w.create_net("netb", 2, &[]);
    w.idle("a1", &["--network", "neta"]);
    w.web("a2", &["--network", "neta"]);
    w.web("b1", &["--network", "netb"]);
    w.web("z0", &[]); // docker0, Docker's default bridge
    let ip_a1 = w.d.container_ip("a1", "neta");
    let ip_a2 = w.d.container_ip("a2", "neta");
    let ip_b1 = w.d.container_ip("b1", "netb");
    let ip_z0 = w.d.container_ip("z0", "bridge");
    let mut ck = Checks::new(&w);
    ck.reach("a1", &ip_a2, "control: same network");
    ck.reach("z0", &w.d.docker0_gateway, "control: docker0 works");
    ck.no_reach("a1", &ip_b1, "two netd networks are isolated");
    ck.no_reach("b1", &ip_a1, "two netd networks are isolated");
    ck.no_reach("z0", &ip_a1, "docker0 cannot reach a netd network");
    ck.no_reach("a1", &ip_z0, "a netd network cannot reach docker0");
    for (from, to, why) in [
        ("a1", &ip_b1, "TCP between netd networks"),
        ("b1", &ip_a2, "TCP between netd networks"),
        ("z0", &ip_a2, "TCP from docker0 to a netd network"),
        ("a1", &ip_z0, "TCP from a netd network to docker0"),
    ] {
        if let Ok(page) = w.http_within(from, to, 80, 2) {
            ck.failures.push(format!(
                "[{why}: {from} -> {to}:80 must fail, got {page:?}]"
            ));
        }
    }
    ck.check(
        "Docker's DNS does not resolve a container of another network",
        !w.d.exec("a1", &["nslookup", "b1"], T)
            .stdout
            .contains(&ip_b1),
    );
    ck.finish();
}

#[test]
fn icc_disabled_separates_containers_of_a_network_but_not_from_the_outside() {
    let w = world();
    let _echo = EchoServer::start(&w.o.ns, Proto::Tcp, &format!("0.0.0.0:{OUTSIDE_PORT}"));
    w.create_net(
        "noicc",
        1,
        &["-o", "com.docker.network.bridge.enable_icc=false"],
    );
    w.idle("c1", &["--network", "noicc"]);
    w.web("c2", &["--network", "noicc"]);
    let ip_c1 = w.d.container_ip("c1", "noicc");
    let ip_c2 = w.d.container_ip("c2", "noicc");
    let mut ck = Checks::new(&w);
    ck.no_reach("c1", &ip_c2, "enable_icc=false");
    ck.no_reach("c2", &ip_c1, "enable_icc=false");
    if let Ok(page) = w.http_within("c1", &ip_c2, 80, 2) {
        ck.failures.push(format!(
            "[enable_icc=false: TCP c1 -> c2:80 must fail, got {page:?}]"
        ));
    }
    ck.reach("c1", &w.o.ip, "enable_icc=false still reaches the outside");
    let answer = w.nc_outside("c1");
    ck.check(
        &format!(
            "enable_icc=false: TCP to the outside works, masqueraded to {}: {answer:?}",
            w.o.host_ip
        ),
        answer.starts_with(&format!("{}:", w.o.host_ip)) && answer.ends_with("hello"),
    );
    let opts = &w.h.inspect("noicc")["Options"];
    ck.check(
        &format!("netd inspect noicc shows enable_icc=false: {opts}"),
        opts["com.docker.network.bridge.enable_icc"].as_str() == Some("false"),
    );
    ck.finish();
}

#[test]
fn internal_network_has_no_way_out() {
    let w = world();
    let _echo = EchoServer::start(&w.o.ns, Proto::Tcp, &format!("0.0.0.0:{OUTSIDE_PORT}"));
    w.create_net("inner", 1, &["--internal"]);
    w.create_net("outer", 2, &[]);
    w.idle("i1", &["--network", "inner"]);
    w.web("i2", &["--network", "inner"]);
    w.idle("e1", &["--network", "outer"]);
    let ip_i2 = w.d.container_ip("i2", "inner");
    let mut ck = Checks::new(&w);
    ck.check(
        "docker network inspect inner: Internal",
        w.docker_net("inner")["Internal"].as_bool() == Some(true),
    );
    ck.check(
        "netd inspect inner: Internal (docker network create --internal reaches netd)",
        w.h.inspect("inner")["Internal"].as_bool() == Some(true),
    );
    ck.reach(
        "i1",
        &ip_i2,
        "an internal network still connects its containers",
    );
    ck.page(
        "i1",
        "i2",
        80,
        "i2",
        "an internal network still connects its containers",
    );
    ck.reach(
        "e1",
        &w.o.ip,
        "control: a normal network reaches the outside",
    );
    let answer = w.nc_outside("e1");
    ck.check(
        &format!("control: TCP from a normal network to the outside: {answer:?}"),
        answer.ends_with("hello"),
    );
    ck.no_reach("i1", &w.o.ip, "--internal: no way out");
    let answer = w.nc_outside("i1");
    ck.check(
        &format!("--internal: TCP to the outside must fail, got {answer:?}"),
        answer.is_empty(),
    );
    ck.finish();
}

#[test]
fn published_port_reaches_the_container_from_outside_and_from_the_host() {
    let w = world();
    w.create_net("pub", 1, &[]);
    w.web("web", &["--network", "pub", "-p", "8080:80"]);
    w.idle("peer", &["--network", "pub"]);
    let mut ck = Checks::new(&w);
    let o = &w.o;
    for (ns, ip, why) in [
        (&o.ns, &o.host_ip, "from the outside namespace"),
        (
            &w.h.host_ns,
            &"127.0.0.1".to_string(),
            "from the host netns on 127.0.0.1",
        ),
        (
            &w.h.host_ns,
            &o.host_ip,
            "from the host netns on its uplink address",
        ),
    ] {
        let what = format!("-p 8080:80 {why}: GET http://{ip}:8080/ serves \"web\"");
        if let Some(page) = ck.ok(&what, http_get(ns, ip, 8080, T_HTTP)) {
            ck.check(&format!("{what}, got {page:?}"), page == "web");
        }
    }
    ck.page(
        "peer",
        &o.host_ip,
        8080,
        "web",
        "hairpin from the same network",
    );
    // Not checked: `docker port web`. Docker 20.10 cannot show a remote driver's ports: it
    // type-asserts EndpointOperInfo's decoded JSON to []types.PortBinding, which a plugin's
    // answer never is (moby/libnetwork#2451), so NetworkSettings.Ports stays empty.
    let ls = w.h.port_ls(None);
    ck.check(
        &format!("netd port ls shows 80/tcp -> 0.0.0.0:8080: {ls:?}"),
        ls.contains("80/tcp -> 0.0.0.0:8080"),
    );
    let ip_web = w.d.container_ip("web", "pub");
    ck.check(
        "no docker-proxy process for a port of netd's driver",
        !std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                    let c = String::from_utf8_lossy(&c);
                    c.contains("docker-proxy") && c.contains("8080") && c.contains(&ip_web)
                })
            }),
    );
    // Removing the container unpublishes the port.
    w.docker_ok(&["rm", "-f", "web"]);
    ck.check(
        "after docker rm the port is gone from the outside",
        http_get(&o.ns, &o.host_ip, 8080, Duration::from_millis(1500)).is_err(),
    );
    let ls = w.h.port_ls(None);
    ck.check(
        &format!("after docker rm netd port ls is empty: {ls:?}"),
        ls.trim().is_empty(),
    );
    ck.consistent("after docker rm of the published container");
    ck.finish();
}

#[test]
fn network_connect_and_disconnect_on_a_running_container() {
    let w = world();
    w.create_net("neta", 1, &[]);
    w.create_net("netb", 2, &[]);
    w.idle("m1", &["--network", "neta"]);
    w.web("b1", &["--network", "netb"]);
    let ip_b1 = w.d.container_ip("b1", "netb");
    let mut ck = Checks::new(&w);
    ck.no_reach("m1", &ip_b1, "before connect");
    let veths_before = w.h.host_veths();

    w.docker_ok(&["network", "connect", "netb", "m1"]);
    let ip_m1b = w.d.container_ip("m1", "netb");
    ck.check(
        &format!("m1's new address {ip_m1b} lies in netb's subnet"),
        in_24(&ip_m1b, &w.h.subnet(2)),
    );
    let addrs = w.d.exec("m1", &["ip", "-4", "addr"], T).stdout;
    ck.check(
        &format!("m1 has {ip_m1b} on a second interface: {addrs}"),
        addrs.contains(&format!("inet {ip_m1b}/24")) && addrs.contains("eth1"),
    );
    ck.reach("m1", &ip_b1, "after connect");
    ck.page("m1", "b1", 80, "b1", "after connect, by name");
    ck.check(
        "netd inspect netb lists m1's new endpoint",
        w.netd_endpoint("netb", &ip_m1b).is_some(),
    );
    let veth = format!("nd{}", &w.endpoint_id("m1", "netb")[..12]);
    let veths = w.h.host_veths();
    ck.check(
        &format!("connect adds netd veth {veth}: {veths_before:?} -> {veths:?}"),
        veths.contains(&veth) && veths.len() == veths_before.len() + 1,
    );
    ck.consistent("after connect");

    w.docker_ok(&["network", "disconnect", "netb", "m1"]);
    ck.no_reach("m1", &ip_b1, "after disconnect");
    let addrs = w.d.exec("m1", &["ip", "-4", "addr"], T).stdout;
    ck.check(
        &format!("m1 no longer has {ip_m1b}: {addrs}"),
        !addrs.contains(&format!("inet {ip_m1b}/")),
    );
    ck.check(
        "netd inspect netb no longer lists m1",
        w.netd_endpoint("netb", &ip_m1b).is_none() && w.netd_endpoints("netb") == 1,
    );
    ck.check(
        &format!("disconnect removes {veth}: {:?}", w.h.host_veths()),
        w.h.host_veths() == veths_before,
    );
    ck.reach("m1", &w.h.gateway_of("neta"), "m1 keeps its first network");
    ck.consistent("after disconnect");
    ck.finish();
}

#[test]
fn traffic_survives_netd_daemon_restart_and_crash() {
    let mut w = world();
    w.create_net("front", 1, &[]);
    w.web("web1", &["--network", "front"]);
    w.idle("cli1", &["--network", "front"]);
    w.create_net("back", 2, &[]);
    w.web("back1", &["--network", "back"]);
    let mut failures = Vec::new();
    let ok = |w: &World, failures: &mut Vec<String>, when: &str| {
        if !w.ping("cli1", "web1") {
            failures.push(format!("[{when}: ping cli1 -> web1]"));
        }
        match w.http("cli1", "web1", 80) {
            Ok(p) if p == "web1" => {}
            other => failures.push(format!("[{when}: wget cli1 -> web1: {other:?}]")),
        }
    };
    ok(&w, &mut failures, "before any restart");

    w.h.restart();
    ok(&w, &mut failures, "after SIGTERM + start");
    w.idle("cli2", &["--network", "front"]);
    if !w.ping("cli2", "web1") {
        failures.push("[after restart: a new container cli2 reaches web1]".into());
    }

    w.h.kill9();
    ok(
        &w,
        &mut failures,
        "while the daemon is dead (the dataplane keeps forwarding)",
    );
    w.h.start_daemon();
    ok(&w, &mut failures, "after kill -9 + start");
    w.docker_ok(&["network", "connect", "back", "cli1"]);
    match w.http("cli1", "back1", 80) {
        Ok(p) if p == "back1" => {}
        other => failures.push(format!(
            "[after the crash: docker network connect back cli1, then wget back1: {other:?}]"
        )),
    }
    w.docker_ok(&["network", "disconnect", "back", "cli1"]);
    w.docker_ok(&["rm", "-f", "cli2"]);
    if w.netd_endpoints("front") != 2 {
        failures.push(format!(
            "[after docker rm cli2: netd inspect front lists 2 endpoints: {}]",
            w.h.inspect("front")["Containers"]
        ));
    }
    let mut ck = Checks::new(&w);
    ck.failures = failures;
    ck.consistent("after restarts, connect, disconnect and rm");
    ck.finish();
}

#[test]
fn network_rm_with_a_container_attached_is_refused() {
    let w = world();
    w.create_net("busy", 1, &[]);
    w.idle("c1", &["--network", "busy"]);
    let ip = w.d.container_ip("c1", "busy");
    let mut ck = Checks::new(&w);
    let r = w.d.docker(&["network", "rm", "busy"]);
    ck.check(
        &format!("docker network rm of a network in use fails: {r}"),
        !r.success() && r.stderr.contains("active endpoints"),
    );
    ck.check(
        "the network stays in netd",
        w.h.network_names().iter().any(|n| n == "busy"),
    );
    ck.check(
        "and keeps c1's endpoint",
        w.netd_endpoint("busy", &ip).is_some(),
    );
    ck.reach("c1", &w.h.gateway_of("busy"), "c1 keeps working");

    w.docker_ok(&["rm", "-f", "c1"]);
    w.docker_ok(&["network", "rm", "busy"]);
    ck.check(
        &format!(
            "after docker network rm the network is gone from netd: {:?}",
            w.h.network_names()
        ),
        !w.h.network_names().iter().any(|n| n == "busy"),
    );
    ck.check(
        &format!("no netd veth left: {:?}", w.h.host_veths()),
        w.h.host_veths().is_empty(),
    );
    ck.consistent("after docker network rm");
    ck.finish();
}

#[test]
fn dockers_own_ipam_with_netds_driver() {
    let w = world();
    let subnet = w.h.subnet(4);
    let gw = w.h.addr(4, 254);
    w.docker_ok(&[
        "network",
        "create",
        "-d",
        &w.driver,
        "--subnet",
        &subnet,
        "--gateway",
        &gw,
        "dipam",
    ]);
    // No subnet at all: Docker picks one from its pool (10.<octet>.192.0/19, see engines).
    w.docker_ok(&["network", "create", "-d", &w.driver, "dauto"]);
    w.idle("c1", &["--network", "dipam"]);
    w.web("c2", &["--network", "dipam"]);
    w.idle("c3", &["--network", "dauto"]);
    w.web("c4", &["--network", "dauto"]);
    let ip1 = w.d.container_ip("c1", "dipam");
    let ip3 = w.d.container_ip("c3", "dauto");
    let mut ck = Checks::new(&w);
    ck.check(
        &format!("Docker's IPAM: c1's address {ip1} lies in {subnet}"),
        in_24(&ip1, &subnet),
    );
    let pool = format!("10.{}.", w.h.octet());
    ck.check(
        &format!(
            "Docker's default pool: c3's address {ip3} lies in 10.{}.192.0/19",
            w.h.octet()
        ),
        ip3.starts_with(&pool),
    );
    ck.reach("c1", "c2", "Docker's IPAM, by name");
    ck.page("c1", "c2", 80, "c2", "Docker's IPAM, TCP by name");
    ck.reach("c3", "c4", "Docker's default pool, by name");
    ck.page("c3", "c4", 80, "c4", "Docker's default pool, TCP by name");
    ck.reach("c1", &gw, "the --gateway address answers");
    ck.no_reach("c1", &ip3, "two networks of Docker's IPAM are isolated");
    let names = w.h.network_names();
    ck.check(
        &format!("netd network ls lists dipam and dauto: {names:?}"),
        names.iter().any(|n| n == "dipam") && names.iter().any(|n| n == "dauto"),
    );
    if names.iter().any(|n| n == "dipam") {
        let v = w.h.inspect("dipam");
        ck.check(
            &format!(
                "netd inspect dipam: subnet {subnet}, gateway {gw}: {}",
                v["IPAM"]
            ),
            v["IPAM"]["Config"][0]["Subnet"].as_str() == Some(subnet.as_str())
                && v["IPAM"]["Config"][0]["Gateway"].as_str() == Some(gw.as_str()),
        );
        ck.check(
            "netd inspect dipam lists c1's endpoint",
            w.netd_endpoint("dipam", &ip1).is_some(),
        );
    }
    ck.consistent("with Docker's IPAM");
    ck.finish();
}
