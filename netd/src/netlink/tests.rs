//! Namespace tests (run as root). Each test makes its own `h2x*` namespaces: a "host" one where
//! the [`Netlink`] runs (entered with `netns::run_in`) and sandboxes. Deleting a namespace
//! destroys every veth in it, so the guards clean up even when a test fails.
//! The kernel state is checked with `ip -j`, independently of the code under test.
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use serde_json::Value;

use super::{netns, CreatedLink, EndpointLink, Netlink};

/// A named namespace `h2x<pid>-<tag><n>`, deleted on drop.
struct TestNs {
    /// Name under /run/netns.
    name: String,
    /// /run/netns/NAME.
    path: PathBuf,
}

impl TestNs {
    fn new(tag: &str) -> TestNs {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("h2x{}-{tag}{n}", std::process::id());
        let _ = netns::delete_named(&name);
        let path = netns::create_named(&name).expect("create test namespace");
        TestNs { name, path }
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = netns::delete_named(&self.name) {
            eprintln!("cleanup of {}: {e:#}", self.name);
        }
    }
}

/// Runs `f` with a [`Netlink`] connected inside `ns`, on a thread in that namespace.
fn with_netlink<T, Fut>(ns: &Path, f: impl FnOnce(Netlink) -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: Future<Output = T>,
{
    netns::run_in(ns, move || {
        netns::block_on(async move {
            let netlink = Netlink::connect().await.expect("connect");
            f(netlink).await
        })
    })
    .expect("run in test namespace")
}

/// `ip -n NS -j ARGS...`, parsed.
fn ip_json(ns: &TestNs, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j"])
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Value::Array(vec![]);
    }
    serde_json::from_str(&text).expect("ip -j output")
}

/// `ip -n NS ARGS...` for setting up a scenario.
fn ip(ns: &TestNs, args: &[&str]) {
    let status = Command::new("ip")
        .args(["-n", &ns.name])
        .args(args)
        .status()
        .expect("run ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// Names of the links of a namespace.
fn link_names(ns: &TestNs) -> Vec<String> {
    let links = ip_json(ns, &["link", "show"]);
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_owned())
        .collect()
}

/// A sysctl of the namespace at `ns`, read from a thread inside it.
fn sysctl(ns: &Path, key: &str) -> String {
    let path = format!("/proc/sys/{key}");
    netns::run_in(ns, move || Ok(std::fs::read_to_string(path)?))
        .expect("read sysctl")
        .trim()
        .to_owned()
}

/// Owned parameters of an endpoint, so they can move into a namespace thread.
#[derive(Clone)]
struct Ep {
    host: String,
    netns: PathBuf,
    ifname: Option<String>,
    address: ipnet::Ipv4Net,
    gateway: Ipv4Addr,
    mtu: u32,
}

impl Ep {
    fn new(host: &str, sandbox: &TestNs, address: &str) -> Ep {
        let address: ipnet::Ipv4Net = address.parse().unwrap();
        Ep {
            host: host.to_owned(),
            netns: sandbox.path.clone(),
            ifname: None,
            address,
            gateway: address.hosts().next().unwrap(),
            mtu: 1400,
        }
    }

    fn mac(&self) -> [u8; 6] {
        let [a, b, c, d] = self.address.addr().octets();
        [0x02, 0x42, a, b, c, d]
    }

    fn gateway_mac(&self) -> [u8; 6] {
        let [a, b, c, d] = self.gateway.octets();
        [0x02, 0x4e, a, b, c, d]
    }

    async fn create(&self, netlink: &Netlink) -> anyhow::Result<CreatedLink> {
        self.create_with(netlink, |_| Ok(())).await
    }

    async fn create_with(
        &self,
        netlink: &Netlink,
        before_up: impl FnOnce(u32) -> anyhow::Result<()>,
    ) -> anyhow::Result<CreatedLink> {
        netlink
            .create_endpoint(
                &EndpointLink {
                    host_ifname: &self.host,
                    netns: &self.netns,
                    sandbox_ifname: self.ifname.as_deref(),
                    address: self.address,
                    gateway: self.gateway,
                    mac: self.mac(),
                    gateway_mac: self.gateway_mac(),
                    mtu: self.mtu,
                    host_mtu: self.mtu,
                },
                before_up,
            )
            .await
    }
}

#[test]
fn endpoint_is_created_configured_and_deleted() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    let ep1 = Ep::new("nd0000000000a1", &sandbox, "10.77.0.2/24");
    let ep2 = Ep::new("nd0000000000a2", &sandbox, "10.78.0.2/24");
    let (e1, e2) = (ep1.clone(), ep2.clone());
    let (c1, c2) = with_netlink(&host.path, move |nl| async move {
        nl.add_gateway(e1.gateway).await.unwrap();
        nl.add_gateway(e2.gateway).await.unwrap();
        let c1 = e1.create(&nl).await.expect("create ep1");
        let c2 = e2.create(&nl).await.expect("create ep2");
        assert_eq!(
            nl.link_index(&e1.host).await.unwrap(),
            Some(c1.host_ifindex)
        );
        let mut names = nl.links_with_prefix("nd").await.unwrap();
        names.sort();
        assert_eq!(names, [e1.host.clone(), e2.host.clone()]);
        (c1, c2)
    });
    assert_eq!(c1.sandbox_ifname, "eth0");
    assert_eq!(c2.sandbox_ifname, "eth1");

    // Sandbox side: address, MAC, MTU, up, no IPv6, one default route (via the first gateway).
    let eth0 = &ip_json(&sandbox, &["addr", "show", "dev", "eth0"])[0];
    assert_eq!(eth0["address"], "02:42:0a:4d:00:02");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["operstate"], "UP", "{eth0}");
    let addrs = eth0["addr_info"].as_array().unwrap();
    assert_eq!(addrs.len(), 1, "only the IPv4 address: {eth0}");
    assert_eq!(addrs[0]["local"], "10.77.0.2");
    assert_eq!(addrs[0]["prefixlen"], 24);
    let defaults = ip_json(&sandbox, &["route", "show", "default"]);
    assert_eq!(defaults.as_array().unwrap().len(), 1, "{defaults}");
    assert_eq!(defaults[0]["gateway"], "10.77.0.1");
    assert_eq!(defaults[0]["dev"], "eth0");
    let eth1 = &ip_json(&sandbox, &["addr", "show", "dev", "eth1"])[0];
    assert_eq!(eth1["addr_info"][0]["local"], "10.78.0.2");
    assert_eq!(
        sysctl(&sandbox.path, "net/ipv6/conf/eth0/disable_ipv6"),
        "1"
    );
    assert_eq!(
        sysctl(&sandbox.path, "net/ipv6/conf/eth1/disable_ipv6"),
        "1"
    );

    // Host side: MAC, MTU, up, /32 route with the gateway as source, permanent neighbor.
    let veth = &ip_json(&host, &["addr", "show", "dev", &ep1.host])[0];
    assert_eq!(veth["ifindex"], c1.host_ifindex);
    assert_eq!(veth["address"], "02:4e:0a:4d:00:01");
    assert_eq!(veth["mtu"], 1400);
    assert_eq!(veth["operstate"], "UP", "{veth}");
    assert!(veth["addr_info"].as_array().unwrap().is_empty(), "{veth}");
    let route = &ip_json(&host, &["route", "show", "10.77.0.2/32"])[0];
    assert_eq!(route["dev"], ep1.host);
    assert_eq!(route["prefsrc"], "10.77.0.1");
    assert_eq!(route["scope"], "link");
    let neigh = &ip_json(&host, &["neigh", "show", "dev", &ep1.host])[0];
    assert_eq!(neigh["dst"], "10.77.0.2");
    assert_eq!(neigh["lladdr"], "02:42:0a:4d:00:02");
    assert_eq!(neigh["state"][0], "PERMANENT");
    assert_eq!(
        sysctl(
            &host.path,
            &format!("net/ipv6/conf/{}/disable_ipv6", ep1.host)
        ),
        "1"
    );

    // Delete both (twice: missing is fine); nothing is left on either side.
    let (h1, h2) = (ep1.host.clone(), ep2.host.clone());
    let left = with_netlink(&host.path, move |nl| async move {
        for name in [&h1, &h2, &h1] {
            nl.delete_link(name).await.unwrap();
        }
        assert_eq!(nl.link_index(&h1).await.unwrap(), None);
        nl.links_with_prefix("nd").await.unwrap()
    });
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(link_names(&sandbox), ["lo"]);
    assert!(ip_json(&host, &["route", "show", "10.77.0.2/32"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(ip_json(&host, &["neigh", "show", "10.77.0.2"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(ip_json(&sandbox, &["route", "show"])
        .as_array()
        .unwrap()
        .is_empty());
}

/// The daemon's setting: a multi-thread runtime, endpoints created from spawned tasks (so the
/// future must be `Send`), several at once into one sandbox (names must not collide).
#[test]
fn concurrent_endpoints_from_a_multithreaded_runtime() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    let eps: Vec<Ep> = (0..4)
        .map(|i| {
            Ep::new(
                &format!("nd00000000000{i}"),
                &sandbox,
                &format!("10.9{i}.0.2/24"),
            )
        })
        .collect();
    let mut names = netns::run_in(&host.path, move || {
        // Worker threads inherit the namespace of the thread that builds the runtime.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let nl = Netlink::connect().await?;
            for ep in &eps {
                nl.add_gateway(ep.gateway).await?;
            }
            let tasks: Vec<_> = eps
                .into_iter()
                .map(|ep| {
                    let nl = nl.clone();
                    tokio::spawn(async move { ep.create(&nl).await })
                })
                .collect();
            let mut names = Vec::new();
            for task in tasks {
                names.push(task.await??.sandbox_ifname);
            }
            Ok(names)
        })
    })
    .expect("concurrent creates");
    names.sort();
    assert_eq!(names, ["eth0", "eth1", "eth2", "eth3"]);
    let defaults = ip_json(&sandbox, &["route", "show", "default"]);
    assert_eq!(defaults.as_array().unwrap().len(), 1, "{defaults}");
    // The workers came back to the host namespace: its links are there.
    assert_eq!(
        link_names(&host)
            .iter()
            .filter(|n| n.starts_with("nd"))
            .count(),
        4
    );
}

#[test]
fn sandbox_with_a_default_route_keeps_it() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    ip(
        &sandbox,
        &["route", "add", "default", "dev", "lo", "metric", "700"],
    );
    let mut ep = Ep::new("nd0000000000b1", &sandbox, "10.79.0.2/24");
    ep.ifname = Some("web0".into());
    let e = ep.clone();
    let created = with_netlink(&host.path, move |nl| async move {
        nl.add_gateway(e.gateway).await.unwrap();
        e.create(&nl).await.expect("create")
    });
    assert_eq!(created.sandbox_ifname, "web0");
    let defaults = ip_json(&sandbox, &["route", "show", "default"]);
    assert_eq!(defaults.as_array().unwrap().len(), 1, "{defaults}");
    assert_eq!(defaults[0]["dev"], "lo");
}

#[test]
fn failed_endpoint_leaves_nothing() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    let ep = Ep::new("nd0000000000c1", &sandbox, "10.80.0.2/24");
    let mut bad_name = Ep::new("nd0000000000c2", &sandbox, "10.80.0.3/24");
    bad_name.ifname = Some("lo".into());
    let mut bad_mtu = Ep::new("nd0000000000c3", &sandbox, "10.80.0.4/24");
    bad_mtu.mtu = 10;
    let mut bad_ns = Ep::new("nd0000000000c4", &sandbox, "10.80.0.5/24");
    bad_ns.netns = PathBuf::from(format!("/run/netns/h2x{}-missing", std::process::id()));
    let sandbox_path = sandbox.path.display().to_string();
    let errors = with_netlink(&host.path, move |nl| async move {
        // The gateway is not on the host yet: the host route (src = gateway) fails late, after
        // both ends are configured.
        let no_gateway = ep.create(&nl).await.unwrap_err();
        let lo_taken = bad_name.create(&nl).await.unwrap_err();
        let mtu = bad_mtu.create(&nl).await.unwrap_err();
        let missing_ns = bad_ns.create(&nl).await.unwrap_err();
        // A host name that is taken: the existing link must survive.
        nl.add_gateway(ep.gateway).await.unwrap();
        ep.create(&nl).await.expect("create");
        let mut again = ep.clone();
        again.address = "10.80.0.9/24".parse().unwrap();
        let host_taken = again.create(&nl).await.unwrap_err();
        let survivors = nl.links_with_prefix("nd").await.unwrap();
        nl.delete_link(&ep.host).await.unwrap();
        let left = nl.links_with_prefix("nd").await.unwrap();
        (
            [no_gateway, lo_taken, mtu, missing_ns, host_taken].map(|e| format!("{e:#}")),
            survivors,
            left,
        )
    });
    let (errors, survivors, left) = errors;
    for e in &errors {
        assert!(!e.contains('\n'), "one line: {e}");
    }
    assert!(
        errors[0].starts_with("cannot add route 10.80.0.2/32 via nd0000000000c1"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        format!("interface lo already exists in network namespace {sandbox_path}")
    );
    assert!(
        errors[2].starts_with("cannot create veth nd0000000000c3: "),
        "{}",
        errors[2]
    );
    assert!(
        errors[3].starts_with("network namespace /run/netns/h2x")
            && errors[3].ends_with("does not exist"),
        "{}",
        errors[3]
    );
    assert_eq!(errors[4], "link nd0000000000c1 already exists");
    assert_eq!(survivors, ["nd0000000000c1"]);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(link_names(&sandbox), ["lo"]);
    assert!(ip_json(&sandbox, &["route", "show"])
        .as_array()
        .unwrap()
        .is_empty());
    assert!(ip_json(&host, &["route", "show", "10.80.0.0/24"])
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn before_up_runs_while_both_ends_are_down_and_can_veto() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    let ep = Ep::new("nd0000000000d1", &sandbox, "10.81.0.2/24");
    let vetoed = Ep::new("nd0000000000d2", &sandbox, "10.81.0.3/24");
    let (host_name, sandbox_name) = (host.name.clone(), sandbox.name.clone());
    let (seen, error, left) = with_netlink(&host.path, move |nl| async move {
        nl.add_gateway(ep.gateway).await.unwrap();
        let mut seen = None;
        let created = ep
            .create_with(&nl, |index| {
                let state = |ns: &str, dev: &str| {
                    let out = std::process::Command::new("ip")
                        .args(["-n", ns, "-j", "link", "show", "dev", dev])
                        .output()
                        .expect("ip link show");
                    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j");
                    (v[0]["ifindex"].clone(), v[0]["operstate"].clone())
                };
                seen = Some((
                    index,
                    state(&host_name, &ep.host),
                    state(&sandbox_name, "eth0"),
                ));
                Ok(())
            })
            .await
            .expect("create");
        let error = vetoed
            .create_with(&nl, |_| Err(anyhow::anyhow!("no dataplane")))
            .await
            .unwrap_err();
        let left = nl.links_with_prefix("nd").await.unwrap();
        nl.delete_link(&ep.host).await.unwrap();
        (
            seen.map(|s| (s, created.host_ifindex)),
            format!("{error:#}"),
            left,
        )
    });
    let ((index, host_state, sandbox_state), created_index) = seen.expect("before_up ran");
    assert_eq!(index, created_index);
    assert_eq!(host_state, (Value::from(index), Value::from("DOWN")));
    assert_eq!(sandbox_state.1, "DOWN");
    assert_eq!(error, "no dataplane");
    assert_eq!(left, ["nd0000000000d1"], "the vetoed pair is gone");
    assert_eq!(link_names(&sandbox), ["lo"]);
}

#[test]
fn gateways_live_on_lo_with_their_label() {
    let host = TestNs::new("h");
    ip(&host, &["link", "set", "lo", "down"]);
    ip(&host, &["addr", "add", "10.81.0.9/32", "dev", "lo"]);
    let gw: Ipv4Addr = "10.81.0.1".parse().unwrap();
    let (listed, after) = with_netlink(&host.path, move |nl| async move {
        nl.add_gateway(gw).await.unwrap();
        nl.add_gateway(gw).await.expect("idempotent");
        let listed = nl.gateways().await.unwrap();
        nl.remove_gateway(gw).await.unwrap();
        nl.remove_gateway(gw).await.expect("missing is fine");
        // Not ours (no label): never removed.
        nl.remove_gateway("10.81.0.9".parse().unwrap())
            .await
            .unwrap();
        (listed, nl.gateways().await.unwrap())
    });
    assert_eq!(listed, [gw]);
    assert!(after.is_empty(), "{after:?}");
    let lo = &ip_json(&host, &["addr", "show", "dev", "lo"])[0];
    assert!(
        lo["flags"].as_array().unwrap().contains(&"UP".into()),
        "{lo}"
    );
    let locals: Vec<&Value> = lo["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["local"])
        .collect();
    assert!(locals.contains(&&Value::from("10.81.0.9")), "{lo}");
    assert!(!locals.contains(&&Value::from("10.81.0.1")), "{lo}");
}

#[test]
fn host_prefixes_cover_addresses_and_routes() {
    let host = TestNs::new("h");
    ip(&host, &["addr", "add", "192.168.77.5/24", "dev", "lo"]);
    ip(&host, &["route", "add", "10.123.0.0/16", "dev", "lo"]);
    ip(&host, &["route", "add", "default", "dev", "lo"]);
    let prefixes = with_netlink(
        &host.path,
        |nl| async move { nl.host_prefixes().await.unwrap() },
    );
    let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
    for expected in ["127.0.0.0/8", "192.168.77.0/24", "10.123.0.0/16"] {
        assert!(
            prefixes.iter().any(|p| p == expected),
            "{expected} in {prefixes:?}"
        );
    }
    assert!(!prefixes.iter().any(|p| p == "0.0.0.0/0"), "{prefixes:?}");
}

#[test]
fn named_namespaces_resolve_and_have_an_identity() {
    let ns = TestNs::new("n");
    assert_eq!(netns::resolve(&ns.name).unwrap(), ns.path);
    assert_eq!(
        netns::resolve("/proc/self/ns/net").unwrap(),
        Path::new("/proc/self/ns/net")
    );
    let missing = format!("h2x{}-absent", std::process::id());
    for bad in [missing.as_str(), "/etc/hostname", "/proc/self/ns/mnt", ""] {
        let e = netns::resolve(bad).unwrap_err();
        assert_eq!(e.to_string(), format!("no such network namespace: {bad}"));
    }
    let e = netns::create_named(&ns.name).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("network namespace {} already exists", ns.name)
    );
    assert!(netns::create_named("a/b").is_err());

    // lo is up inside, and the identity is the namespace's (same from inside, new after reuse).
    let lo = &ip_json(&ns, &["link", "show", "lo"])[0];
    assert!(
        lo["flags"].as_array().unwrap().contains(&"UP".into()),
        "{lo}"
    );
    let first = netns::identity(&ns.path).unwrap();
    let inside = netns::run_in(&ns.path, || {
        netns::identity(Path::new("/proc/thread-self/ns/net"))
    })
    .unwrap();
    assert_eq!(first, inside);
    netns::delete_named(&ns.name).unwrap();
    netns::delete_named(&ns.name).expect("missing is fine");
    assert!(netns::resolve(&ns.name).is_err());
    netns::create_named(&ns.name).unwrap();
    assert_ne!(netns::identity(&ns.path).unwrap(), first);
}

/// Latency of `create_endpoint` and `delete_link`. Not a pass/fail test: prints percentiles of
/// 40 rounds. Run: `cargo test -p netd --release --lib netlink::tests::latency -- --ignored
/// --nocapture`.
#[test]
#[ignore = "measurement, run by hand"]
fn latency() {
    let host = TestNs::new("h");
    let sandbox = TestNs::new("s");
    let ep = Ep::new("nd0000000000d1", &sandbox, "10.82.0.2/24");
    let (mut creates, mut deletes) = with_netlink(&host.path, move |nl| async move {
        nl.add_gateway(ep.gateway).await.unwrap();
        let (mut creates, mut deletes) = (Vec::new(), Vec::new());
        for _ in 0..40 {
            let started = Instant::now();
            ep.create(&nl).await.expect("create");
            creates.push(started.elapsed());
            let started = Instant::now();
            nl.delete_link(&ep.host).await.unwrap();
            deletes.push(started.elapsed());
        }
        (creates, deletes)
    });
    for (what, times) in [
        ("create_endpoint", &mut creates),
        ("delete_link", &mut deletes),
    ] {
        times.sort();
        let at = |q: usize| times[(times.len() - 1) * q / 100];
        eprintln!(
            "{what}: min {:?} p50 {:?} p90 {:?} max {:?}",
            at(0),
            at(50),
            at(90),
            at(100)
        );
    }
}
