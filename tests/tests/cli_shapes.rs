//! The CLI's output shapes, which mirror `docker network` so Docker users and tooling
//! need no manual: predefined networks, `ls` table/json/-q, `inspect` fields, `rm`,
//! `prune`, `sandbox`, `stats`.
use std::collections::BTreeSet;
use std::time::Duration;

use netd_common::stats::{Delivery, DropReason};
use netd_tests::harness::check::assert_consistent;
use netd_tests::harness::{Background, TestHost};
use serde_json::Value;

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[test]
fn predefined_networks_and_ls_formats() {
    let h = TestHost::started();
    let ls = h.ls_json();
    let mut seen = Vec::new();
    for v in &ls {
        for key in ["ID", "Name", "Driver", "Scope", "Internal", "IPv6"] {
            assert!(
                v[key].is_string(),
                "contract: ls json {key} is a string: {v}"
            );
        }
        assert!(is_hex(s(&v["ID"]), 12), "contract: 12-hex ID: {v}");
        assert_eq!(v["Scope"], "local", "{v}");
        assert_eq!(v["Internal"], "false", "{v}");
        assert_eq!(v["IPv6"], "false", "{v}");
        seen.push((s(&v["Name"]).to_string(), s(&v["Driver"]).to_string()));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("bridge".to_string(), "bridge".to_string()),
            ("host".to_string(), "host".to_string()),
            ("none".to_string(), "null".to_string()),
        ],
        "contract: predefined bridge/host/none on first start"
    );

    let table = h.netd_ok(&["network", "ls"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().map(str::trim_end),
        Some("NETWORK ID     NAME      DRIVER    SCOPE"),
        "contract: ls table header:\n{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "three rows:\n{table}");
    for r in &rows {
        assert!(
            r.len() == 4 && is_hex(r[0], 12) && r[3] == "local",
            "row {r:?}:\n{table}"
        );
    }

    let q = h.netd_ok(&["network", "ls", "-q"]);
    let q: BTreeSet<&str> = q.lines().collect();
    let ids: BTreeSet<&str> = ls.iter().map(|v| s(&v["ID"])).collect();
    assert_eq!(q, ids, "contract: -q prints the ids");

    let bridge = h.inspect("bridge");
    assert_eq!(bridge["Driver"], "bridge");
    assert_eq!(
        bridge["IPAM"]["Config"][0]["Subnet"],
        h.subnet(0).as_str(),
        "contract: --bridge-subnet sets the bridge network's subnet: {bridge}"
    );
    assert_eq!(
        bridge["IPAM"]["Config"][0]["Gateway"],
        h.addr(0, 1).as_str(),
        "docker: default gateway is the first address: {bridge}"
    );
    assert_eq!(h.inspect("host")["Driver"], "host");
    assert_eq!(h.inspect("none")["Driver"], "null");
    assert!(h.ls_json().len() == 3);
}

#[test]
fn create_and_inspect_fields() {
    let h = TestHost::started();
    let range = format!("{}/28", h.addr(1, 16));
    let aux = h.addr(1, 17);
    let id = h.create_network(
        "web",
        1,
        &[
            "--gateway",
            &h.addr(1, 254),
            "--ip-range",
            &range,
            "--aux-address",
            &format!("reserved={aux}"),
            "--mtu",
            "1400",
            "-o",
            "com.docker.network.bridge.enable_icc=true",
        ],
    );
    let ls = h.ls_json();
    let row = ls.iter().find(|v| v["Name"] == "web").expect("web in ls");
    assert_eq!(row["ID"], &id[..12], "contract: ls shows the 12-char id");
    assert_eq!(row["Driver"], "bridge");

    let a = h.sandbox("a");
    let ip = h.connect("web", &a, &["--alias", "alpha"]);
    let v = h.inspect("web");
    assert_eq!(v["Name"], "web");
    assert_eq!(v["Id"], id.as_str(), "inspect Id is the id create printed");
    assert_eq!(v["Driver"], "bridge");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Internal"], false);
    assert_eq!(v["EnableIPv6"], false);
    let cfg = &v["IPAM"]["Config"][0];
    assert_eq!(cfg["Subnet"], h.subnet(1).as_str(), "{v}");
    assert_eq!(cfg["Gateway"], h.addr(1, 254).as_str(), "{v}");
    assert_eq!(cfg["IPRange"], range.as_str(), "{v}");
    assert_eq!(cfg["AuxAddresses"]["reserved"], aux.as_str(), "{v}");
    assert_eq!(
        v["Options"]["com.docker.network.bridge.enable_icc"], "true",
        "-o lands in Options: {v}"
    );

    let containers = v["Containers"].as_object().expect("Containers object");
    assert_eq!(containers.len(), 1, "{v}");
    let (sandbox_id, c) = containers.iter().next().unwrap();
    let sb = h.sandboxes();
    let info = sb
        .iter()
        .find(|x| x["Name"] == a.as_str())
        .expect("a in sandbox ls");
    assert_eq!(
        sandbox_id.as_str(),
        s(&info["Id"]),
        "Containers is keyed by sandbox id"
    );
    assert_eq!(c["Name"], a.as_str());
    assert!(
        s(&c["EndpointID"]).len() >= 12
            && s(&c["EndpointID"]).chars().all(|c| c.is_ascii_hexdigit())
    );
    assert_eq!(
        c["IPv4Address"],
        format!("{ip}/24").as_str(),
        "issue/docker: the key is `IPv4Address`: {c}"
    );
    assert_eq!(
        c["IPv6Address"], "",
        "docker: the key is `IPv6Address`: {c}"
    );
    assert_eq!(c["Interface"], "eth0");
    assert_eq!(c["Aliases"], serde_json::json!(["alpha"]), "--alias: {c}");
    let last: u8 = ip.rsplit('.').next().unwrap().parse().unwrap();
    assert!(
        (16..32).contains(&last) && ip != aux,
        "auto IP {ip} must come from --ip-range {range} and skip aux address {aux}"
    );
    let mtu = h.links(&a).iter().find(|l| l["ifname"] == "eth0").unwrap()["mtu"].clone();
    assert_eq!(mtu, 1400, "--mtu sets eth0's MTU");

    // Lookup by full and short id, several names in order.
    assert_eq!(h.inspect(&id)["Name"], "web", "inspect by full id");
    assert_eq!(
        h.inspect(&id[..12])["Name"],
        "web",
        "inspect by the 12-char id ls shows"
    );
    let many = h.inspect_many(&["none", "web", "bridge"]);
    let names: Vec<&str> = many.iter().map(|v| s(&v["Name"])).collect();
    assert_eq!(
        names,
        ["none", "web", "bridge"],
        "inspect keeps argument order"
    );

    // Defaults: gateway .1, auto IP from the subnet, -o mtu, internal.
    h.create_network(
        "plain",
        2,
        &["-o", "com.docker.network.driver.mtu=1300", "--internal"],
    );
    assert_eq!(h.gateway_of("plain"), h.addr(2, 1), "default gateway");
    let b = h.sandbox("b");
    let ipb = h.connect("plain", &b, &[]);
    assert!(
        ipb.starts_with(&h.addr(2, 0)[..h.addr(2, 0).len() - 1]),
        "{ipb}"
    );
    let mtu = h.links(&b).iter().find(|l| l["ifname"] == "eth0").unwrap()["mtu"].clone();
    assert_eq!(
        mtu, 1300,
        "-o com.docker.network.driver.mtu sets eth0's MTU"
    );
    assert_eq!(h.inspect("plain")["Internal"], true);
    let ls = h.ls_json();
    assert_eq!(
        ls.iter().find(|v| v["Name"] == "plain").unwrap()["Internal"],
        "true"
    );

    // Automatic subnet: from the default pools, overlapping nothing.
    let auto_id = h.netd_ok(&["network", "create", "auto"]);
    assert!(is_hex(auto_id.trim(), 64));
    let subnets: Vec<String> = h
        .inspect_all()
        .iter()
        .filter_map(|v| {
            v["IPAM"]["Config"][0]["Subnet"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let auto = h.inspect("auto")["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        subnets.iter().filter(|s| **s == auto).count(),
        1,
        "{subnets:?}"
    );

    // rm prints each name.
    h.disconnect("plain", &b);
    let out = h.netd_ok(&["network", "rm", "plain", "auto"]);
    assert_eq!(
        out, "plain\nauto\n",
        "contract: rm prints each removed name"
    );
    assert_consistent(&h);
}

#[test]
fn prune_removes_only_unused_user_networks() {
    let h = TestHost::started();
    h.create_network("used", 1, &[]);
    h.create_network("spare1", 2, &[]);
    h.create_network("spare2", 3, &[]);
    let a = h.sandbox("a");
    h.connect("used", &a, &[]);
    let out = h.netd_ok(&["network", "prune", "-f"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Deleted Networks:"),
        "contract: prune output:\n{out}"
    );
    let deleted: BTreeSet<&str> = lines.filter(|l| !l.is_empty()).collect();
    assert_eq!(
        deleted,
        BTreeSet::from(["spare1", "spare2"]),
        "prune output:\n{out}"
    );
    let mut left = h.network_names();
    left.sort();
    assert_eq!(left, ["bridge", "host", "none", "used"]);
    assert_consistent(&h);
}

#[test]
fn sandbox_create_ls_rm() {
    let h = TestHost::started();
    h.create_network("n1", 1, &[]);
    h.create_network("n2", 2, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("n1", &a, &[]);
    h.connect("n2", &a, &[]);

    let table = h.netd_ok(&["sandbox", "ls"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "NETWORKS"],
        "contract: sandbox ls header:\n{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&a) && l.contains("n1") && l.contains("n2")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.trim_end() == b || l.starts_with(&format!("{b} "))),
        "{table}"
    );

    let list = h.sandboxes();
    let info = list
        .iter()
        .find(|v| v["Name"] == a.as_str())
        .expect("a listed");
    assert_eq!(info["Path"], format!("/run/netns/{a}").as_str());
    assert!(info["Id"].is_string() && !s(&info["Id"]).is_empty());
    let mut nets: Vec<&str> = info["Networks"].as_array().unwrap().iter().map(s).collect();
    nets.sort();
    assert_eq!(nets, ["n1", "n2"]);
    assert_consistent(&h);

    // rm disconnects from every network and deletes the netns.
    h.netd_ok(&["sandbox", "rm", &a]);
    assert!(
        !std::path::Path::new("/run/netns").join(&a).exists(),
        "netns of {a} must be gone"
    );
    assert!(h.endpoint("n1", &a).is_none() && h.endpoint("n2", &a).is_none());
    assert!(
        h.host_veths().is_empty(),
        "veths left: {:?}",
        h.host_veths()
    );
    assert!(h.sandboxes().iter().all(|v| v["Name"] != a.as_str()));
    assert_consistent(&h);
    // Both networks are removable now.
    h.netd_ok(&["network", "rm", "n1", "n2"]);
}

#[test]
fn connect_by_netns_path() {
    let h = TestHost::started();
    h.create_network("net", 1, &[]);
    let ns = format!("{}-p", h.id);
    h.must(&["ip", "netns", "add", &ns]);
    let holder = Background::spawn(
        "ip",
        &["netns", "exec", &ns, "sleep", "60"],
        Duration::from_secs(60),
    );
    let path = format!("/proc/{}/ns/net", holder.pid());
    netd_tests::harness::wait_until(Duration::from_secs(5), "sleep to enter the netns", || {
        let mine = std::fs::read_link(&path).ok()?;
        let want = std::fs::metadata(format!("/run/netns/{ns}")).ok()?;
        use std::os::unix::fs::MetadataExt;
        (mine.to_string_lossy().contains(&want.ino().to_string())).then_some(())
    });
    let out = h.netd_ok(&["network", "connect", "net", &path]);
    assert_eq!(out, "");
    let v = h.inspect("net");
    assert_eq!(v["Containers"].as_object().map(|m| m.len()), Some(1), "{v}");
    let links = h.link_names(&ns);
    assert!(
        links.contains(&"eth0".to_string()),
        "eth0 inside the process's netns: {links:?}"
    );
    h.assert_ping(&ns, &h.gateway_of("net"), "endpoint connected by path");
    h.netd_ok(&["network", "disconnect", "net", &path]);
    assert!(!h.link_names(&ns).contains(&"eth0".to_string()));
    assert!(h.host_veths().is_empty());
    drop(holder);
}

#[test]
fn stats_formats() {
    let h = TestHost::started();
    h.create_network("net", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("net", &a, &[]);
    let ip_b = h.connect("net", &b, &[]);
    h.assert_ping(&a, &ip_b, "traffic for the counters");

    let table = h.netd_ok(&["stats"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NETWORK", "KIND", "REASON", "PACKETS", "BYTES"],
        "contract: stats header:\n{table}"
    );
    assert!(
        table.lines().any(|l| {
            let t: Vec<&str> = l.split_whitespace().collect();
            t.len() == 5
                && t[0] == "net"
                && t[1] == "delivery"
                && t[2] == "peer"
                && t[3].parse::<u64>().unwrap_or(0) > 0
        }),
        "a `net delivery peer N` row with N > 0:\n{table}"
    );

    let names: BTreeSet<&str> = Delivery::ALL
        .iter()
        .map(|d| d.name())
        .chain(DropReason::ALL.iter().map(|d| d.name()))
        .collect();
    let mut networks: BTreeSet<String> = h.network_names().into_iter().collect();
    networks.insert("-".into());
    let stats = h.stats();
    assert!(!stats.is_empty());
    // Issue 4: the NAT table's counters follow as kind `nat`, not tied to a network.
    let nat: BTreeSet<&str> = stats
        .iter()
        .filter(|e| e["Kind"].as_str() == Some("nat"))
        .map(|e| {
            assert_eq!(
                e["Network"], "-",
                "contract: NAT counters belong to no network: {e}"
            );
            assert!(e["Packets"].is_u64(), "{e}");
            s(&e["Reason"])
        })
        .collect();
    assert!(
        nat.contains("created") && nat.iter().any(|r| r.contains("evict")),
        "contract: `netd stats` shows NAT counters (created, LRU evictions): {nat:?}"
    );
    for e in stats.iter().filter(|e| e["Kind"].as_str() != Some("nat")) {
        assert!(
            networks.contains(s(&e["Network"])),
            "unknown Network in {e}"
        );
        let kind = s(&e["Kind"]);
        assert!(kind == "delivery" || kind == "drop", "Kind in {e}");
        let reason = s(&e["Reason"]);
        assert!(
            names.contains(reason),
            "Reason {reason:?} is not a netd-common name: {e}"
        );
        if kind == "delivery" {
            assert!(Delivery::ALL.iter().any(|d| d.name() == reason), "{e}");
        } else {
            assert!(DropReason::ALL.iter().any(|d| d.name() == reason), "{e}");
        }
        assert!(e["Packets"].is_u64() && e["Bytes"].is_u64(), "{e}");
    }
}
