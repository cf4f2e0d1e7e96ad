//! CNI conformance (issue 6): the `netd-cni` binary run directly, the way a runtime runs
//! it (CNI_* environment, configuration on stdin), against a test daemon. Container netns
//! are made by the test (`ip netns add <id>-...`), as a runtime makes them; the plugin
//! runs inside the test's host netns.
//!
//! What is asserted, from the CNI spec (1.1.0, with 0.3.x/0.4.0 result shapes) and the
//! issue's contract:
//! - ADD prints a result of the requested version: `interfaces` (host veth without
//!   `sandbox`, then the container interface named CNI_IFNAME with `sandbox` = CNI_NETNS),
//!   `ips` (`address` in CIDR, `gateway`, `interface` = index of the container interface;
//!   `version: "4"` only before 1.0.0), a default route via the gateway, `dns` echoed; the
//!   kernel agrees (address, MAC, route, MTU) and the sandbox reaches its gateway and the
//!   other sandboxes;
//! - the network is created on the first ADD from `subnet`/`gateway`/`mtu`/`internal`, and
//!   an existing network (`netd network create`) is used as it is;
//! - CNI_NETNS may be `/proc/PID/ns/net` and CNI_IFNAME any valid name; concurrent first
//!   ADDs make the network once and hand out distinct addresses;
//! - DEL removes everything, is idempotent, works without CNI_NETNS; CHECK passes after
//!   ADD and fails once the veth is gone (3 for an unknown attachment), and consults
//!   `prevResult` and the container side (an address or MAC not as listed, the address
//!   flushed, the interface renamed: all errors); VERSION lists the versions; GC removes
//!   exactly the CNI attachments of that network not listed in
//!   `cni.dev/valid-attachments`, and without that key removes nothing; STATUS succeeds,
//!   or says 50 with the daemon down;
//! - runtimeConfig `ips`, `mac`, `portMappings` (reached from an outside namespace through
//!   `--uplink`), `aliases` (recorded in inspect);
//! - every error is one JSON object `{cniVersion, code, msg}` on stdout with exit status 1,
//!   quickly, with no panic on stderr and nothing half-made left behind: 4 for bad
//!   CNI_* variables, 6 for undecodable stdin, 1 for an unsupported version, 7 for an
//!   invalid configuration, 11 when the daemon is down.
use std::time::Duration;

use netd_tests::harness::check::{assert_consistent, assert_same, snapshot};
use netd_tests::harness::cni::{
    exec_plugin, sandbox_interface, CniEnv, CniResult, PLUGIN_TIMEOUT, SUPPORTED_VERSIONS,
};
use netd_tests::harness::netns::{ask, EchoServer, Proto};
use netd_tests::harness::{run, wait_until, Background, TestHost};
use serde_json::{json, Value};

/// Per-step deadline of an exchange that must work.
const T: Duration = Duration::from_secs(3);
/// Deadline of an exchange that must fail.
const T_FAIL: Duration = Duration::from_millis(1500);
/// An error must come back at least this fast.
const QUICK: Duration = Duration::from_secs(5);
/// The interface name every attachment uses unless a test says otherwise.
const IF: &str = "eth0";

/// Collects every failed expectation of a test, so one run reports all of them.
struct Checks<'a> {
    h: &'a TestHost,
    failures: Vec<String>,
}

impl<'a> Checks<'a> {
    fn new(h: &'a TestHost) -> Self {
        Checks {
            h,
            failures: Vec::new(),
        }
    }

    fn check(&mut self, what: impl AsRef<str>, ok: bool) {
        if !ok {
            self.failures.push(format!("[{}]", what.as_ref()));
        }
    }

    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("[{what}] got {got:?}, want {want:?}"));
        }
    }

    fn finish(self) {
        if self.failures.is_empty() {
            return;
        }
        panic!(
            "{} expectation(s) of the CNI contract failed:\n{}\n\ninspect: {}\n{}",
            self.failures.len(),
            self.failures.join("\n"),
            serde_json::to_string_pretty(&self.h.inspect_all()).unwrap_or_default(),
            self.h.log_text()
        );
    }
}

/// A configuration that makes network `name` on first ADD: subnet `n` of the test,
/// gateway `.1`, masquerading, MTU 1400 and a DNS block to echo.
fn auto_conf(h: &TestHost, version: &str, name: &str, n: u8) -> Value {
    h.cni_conf(
        version,
        name,
        json!({
            "subnet": h.subnet(n),
            "gateway": h.addr(n, 1),
            "ipMasq": true,
            "mtu": 1400,
            "dns": {"nameservers": [h.addr(n, 1)], "domain": "netd.test", "search": ["netd.test"], "options": ["ndots:1"]},
        }),
    )
}

/// The container id of attachment `what` of this test (alphanumeric start, as the spec
/// requires; unique across parallel tests).
fn cid(h: &TestHost, what: &str) -> String {
    format!("{}{what}", h.id)
}

/// `conf` with `prevResult` set.
fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// The container interface's `ip -j addr` entry in `ns`.
fn sandbox_link(h: &TestHost, ns: &str, ifname: &str) -> Option<Value> {
    h.ip_json(ns, &["addr", "show"])
        .into_iter()
        .find(|l| l["ifname"].as_str() == Some(ifname))
}

/// Non-lo links of `ns`.
fn sandbox_links(h: &TestHost, ns: &str) -> Vec<String> {
    h.link_names(ns).into_iter().filter(|n| n != "lo").collect()
}

/// IPv4 `addr/prefix` strings of a `ip -j addr` link entry.
fn v4_addrs(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["family"].as_str() == Some("inet"))
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect()
}

/// The result of an ADD checked against the spec's shape for `version`, and against the
/// kernel and the daemon. Failures go to `ck`; returns the container's IPv4 (no prefix).
#[allow(clippy::too_many_arguments)]
fn check_add_result(
    ck: &mut Checks,
    h: &TestHost,
    version: &str,
    r: &Value,
    conf: &Value,
    net: &str,
    container_id: &str,
    ns: &str,
    ifname: &str,
) -> String {
    let path = format!("/run/netns/{ns}");
    let gw = h.gateway_of(net);
    let tag = format!("{version} {container_id}");
    ck.eq(
        &format!("{tag}: result cniVersion is the requested one"),
        r["cniVersion"].as_str(),
        Some(version),
    );
    let ifs = r["interfaces"].as_array().cloned().unwrap_or_default();
    ck.eq(
        &format!("{tag}: two interfaces (host veth, container interface): {r}"),
        ifs.len(),
        2,
    );
    let sb = sandbox_interface(r);
    ck.eq(
        &format!("{tag}: the container interface is interfaces[1]: {r}"),
        sb,
        Some(1),
    );
    let host_if = ifs.first().cloned().unwrap_or_default();
    let cont_if = ifs.get(1).cloned().unwrap_or_default();
    let host_name = host_if["name"].as_str().unwrap_or_default().to_string();
    ck.check(
        format!("{tag}: host interface has no sandbox: {host_if}"),
        host_if["sandbox"].as_str().unwrap_or("").is_empty(),
    );
    ck.check(
        format!("{tag}: host interface is netd's veth `nd` + 12 hex: {host_if}"),
        host_name.len() == 14
            && host_name.starts_with("nd")
            && host_name[2..].chars().all(|c| c.is_ascii_hexdigit()),
    );
    match h
        .links(&h.host_ns)
        .into_iter()
        .find(|l| l["ifname"].as_str() == Some(host_name.as_str()))
    {
        None => ck.check(
            format!("{tag}: host veth {host_name} exists in the host netns"),
            false,
        ),
        Some(l) => ck.eq(
            &format!("{tag}: host veth's MAC as in the result"),
            l["address"].as_str(),
            host_if["mac"].as_str(),
        ),
    }
    ck.eq(
        &format!("{tag}: container interface name is CNI_IFNAME"),
        cont_if["name"].as_str(),
        Some(ifname),
    );
    ck.eq(
        &format!("{tag}: container interface sandbox is CNI_NETNS"),
        cont_if["sandbox"].as_str(),
        Some(path.as_str()),
    );

    let ips = r["ips"].as_array().cloned().unwrap_or_default();
    ck.eq(&format!("{tag}: one IP: {r}"), ips.len(), 1);
    let ip0 = ips.first().cloned().unwrap_or_default();
    let address = ip0["address"].as_str().unwrap_or_default().to_string();
    let bare = address.split('/').next().unwrap_or_default().to_string();
    ck.check(
        format!("{tag}: ips[0].address {address:?} is CIDR in the network's subnet"),
        address.ends_with("/24") && bare.parse::<std::net::Ipv4Addr>().is_ok(),
    );
    ck.eq(
        &format!("{tag}: ips[0].gateway"),
        ip0["gateway"].as_str(),
        Some(gw.as_str()),
    );
    ck.eq(
        &format!("{tag}: ips[0].interface points at the container interface"),
        ip0["interface"].as_u64(),
        Some(1),
    );
    if version.starts_with("0.") {
        ck.eq(
            &format!("{tag}: ips[0].version is \"4\" before 1.0.0"),
            ip0["version"].as_str(),
            Some("4"),
        );
    } else {
        ck.check(
            format!("{tag}: ips[0] has no `version` from 1.0.0 on: {ip0}"),
            ip0.get("version").is_none(),
        );
    }
    let routes = r["routes"].as_array().cloned().unwrap_or_default();
    ck.check(
        format!("{tag}: routes has the default route via the gateway: {r}"),
        routes
            .iter()
            .any(|rt| rt["dst"].as_str() == Some("0.0.0.0/0") && rt["gw"].as_str() == Some(&gw)),
    );
    if conf.get("dns").is_some() {
        ck.eq(
            &format!("{tag}: dns echoed from the configuration"),
            &r["dns"],
            &conf["dns"],
        );
    }

    // The kernel.
    match sandbox_link(h, ns, ifname) {
        None => ck.check(format!("{tag}: {ifname} exists in {ns}"), false),
        Some(l) => {
            ck.eq(
                &format!("{tag}: {ifname}'s address in the sandbox"),
                v4_addrs(&l),
                vec![address.clone()],
            );
            ck.eq(
                &format!("{tag}: {ifname}'s MAC as in the result"),
                l["address"].as_str(),
                cont_if["mac"].as_str(),
            );
            if let Some(mtu) = conf["mtu"].as_u64() {
                ck.eq(
                    &format!("{tag}: {ifname}'s MTU is the configured mtu"),
                    l["mtu"].as_u64(),
                    Some(mtu),
                );
            }
            ck.check(
                format!("{tag}: {ifname} is up: {l}"),
                l["operstate"].as_str() == Some("UP")
                    || l["flags"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|x| x == "UP")),
            );
        }
    }
    let routes_k = h.ip_json(ns, &["-4", "route", "show", "default"]);
    ck.check(
        format!("{tag}: the sandbox's default route is via {gw}: {routes_k:?}"),
        routes_k
            .iter()
            .any(|rt| rt["gateway"].as_str() == Some(&gw) && rt["dev"].as_str() == Some(ifname)),
    );

    // The daemon.
    match h.cni_endpoint(net, container_id, Some(ifname)) {
        None => ck.check(
            format!("{tag}: inspect {net} lists the attachment with ContainerID {container_id} and Interface {ifname}"),
            false,
        ),
        Some(ep) => {
            ck.eq(
                &format!("{tag}: inspect IPv4Address"),
                ep["IPv4Address"].as_str(),
                Some(address.as_str()),
            );
            ck.eq(
                &format!("{tag}: inspect MacAddress"),
                ep["MacAddress"].as_str(),
                cont_if["mac"].as_str(),
            );
            let eid = ep["EndpointID"].as_str().unwrap_or_default();
            ck.eq(
                &format!("{tag}: host veth is `nd` + the endpoint id's first 12 hex"),
                host_name.clone(),
                format!("nd{}", &eid[..12.min(eid.len())]),
            );
        }
    }
    bare
}

#[test]
fn add_results_have_the_shape_of_each_version_and_the_sandboxes_connect() {
    let h = TestHost::started();
    let net = "cninet";
    let mut ck = Checks::new(&h);
    let mut sandboxes: Vec<(String, String)> = Vec::new();
    for (i, version) in SUPPORTED_VERSIONS.iter().enumerate() {
        let conf = auto_conf(&h, version, net, 1);
        let (ns, path) = h.cni_netns(&format!("v{i}"));
        let id = cid(&h, &format!("v{i}"));
        let r = h.cni_add(&conf, &id, &path, IF);
        if i == 0 {
            // The network was made from the configuration.
            let v = h.inspect(net);
            let cfg = &v["IPAM"]["Config"][0];
            ck.eq(
                "network created on first ADD with the configured subnet",
                cfg["Subnet"].as_str(),
                Some(h.subnet(1).as_str()),
            );
            ck.eq(
                "network created on first ADD with the configured gateway",
                cfg["Gateway"].as_str(),
                Some(h.addr(1, 1).as_str()),
            );
            ck.eq(
                "network is a bridge network",
                v["Driver"].as_str(),
                Some("bridge"),
            );
            ck.eq(
                "network is not internal",
                v["Internal"].as_bool(),
                Some(false),
            );
        }
        let ip = check_add_result(&mut ck, &h, version, &r, &conf, net, &id, &ns, IF);
        sandboxes.push((ns, ip));
    }
    ck.eq(
        "one network made, however many ADDs",
        h.network_names().iter().filter(|n| *n == net).count(),
        1,
    );
    let gw = h.addr(1, 1);
    for (ns, _) in &sandboxes {
        ck.check(format!("{ns} pings its gateway {gw}"), h.ping(ns, &gw));
    }
    let (first, _) = &sandboxes[0];
    for (ns, ip) in &sandboxes[1..] {
        ck.check(format!("{first} pings {ns} at {ip}"), h.ping(first, ip));
    }
    ck.finish();
    assert_consistent(&h);
}

#[test]
fn network_options_of_the_configuration_apply_only_to_a_new_network() {
    let h = TestHost::started();
    let mut ck = Checks::new(&h);

    // An existing network is used by name, as it is.
    h.create_network("pre", 2, &["--gateway", &h.addr(2, 254)]);
    let conf = h.cni_conf(
        "1.0.0",
        "pre",
        json!({"dns": {"nameservers": ["10.0.0.53"]}}),
    );
    let (ns_a, path_a) = h.cni_netns("a");
    let id_a = cid(&h, "a");
    let r = h.cni_add(&conf, &id_a, &path_a, IF);
    let ip_a = check_add_result(&mut ck, &h, "1.0.0", &r, &conf, "pre", &id_a, &ns_a, IF);
    ck.check(
        format!("the existing network's subnet is used: {ip_a}"),
        ip_a.starts_with(&format!("10.{}.2.", h.octet())),
    );
    let mtu = sandbox_link(&h, &ns_a, IF).unwrap_or_default()["mtu"].as_u64();
    ck.eq("the existing network's MTU (1500)", mtu, Some(1500));

    // A configuration whose subnet disagrees with the existing network: the contract says
    // subnet/gateway/mtu are used only to create a network. Either the existing network is
    // used as it is, or the configuration is refused as invalid (7), leaving nothing.
    let conf_other = auto_conf(&h, "1.0.0", "pre", 3);
    let (ns_o, path_o) = h.cni_netns("o");
    let id_o = cid(&h, "o");
    let before = snapshot(&h);
    let r = h.cni(&CniEnv::attachment("ADD", &id_o, &path_o, IF), &conf_other);
    if r.success() {
        let ip = r.json.as_ref().map_or(String::new(), |v| {
            v["ips"][0]["address"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        });
        ck.check(
            format!("an ADD whose subnet disagrees with the existing network gets an address of the existing network: {r}"),
            ip.starts_with(&format!("10.{}.2.", h.octet())),
        );
    } else {
        let bad = error_breaches(&r, Some(7));
        ck.check(
            format!("an ADD whose subnet disagrees with the existing network is refused with 7 ({bad:?}): {r}"),
            bad.is_empty(),
        );
        ck.check(
            "a refused ADD leaves nothing behind",
            snapshot(&h) == before && sandbox_links(&h, &ns_o).is_empty(),
        );
    }
    ck.eq(
        "no network was made for the configuration's subnet",
        h.network_names().len(),
        4,
    );
    // A CLI sandbox on the same network reaches the CNI container.
    let b = h.sandbox("b");
    h.connect("pre", &b, &[]);
    ck.check(
        format!("CLI sandbox {b} pings the CNI container {ip_a}"),
        h.ping(&b, &ip_a),
    );

    // internal: true makes an internal network.
    let conf = h.cni_conf(
        "1.1.0",
        "intern",
        json!({"subnet": h.subnet(4), "internal": true, "ipMasq": false}),
    );
    let (ns_c, path_c) = h.cni_netns("c");
    let id_c = cid(&h, "c");
    let r = h.cni_add(&conf, &id_c, &path_c, IF);
    check_add_result(&mut ck, &h, "1.1.0", &r, &conf, "intern", &id_c, &ns_c, IF);
    let v = h.inspect("intern");
    ck.eq(
        "internal: true makes an internal network",
        v["Internal"].as_bool(),
        Some(true),
    );
    ck.eq(
        "ipMasq: false recorded as Docker's masquerade option",
        v["Options"]["com.docker.network.bridge.enable_ip_masquerade"].as_str(),
        Some("false"),
    );
    ck.eq(
        "the subnet of the new network",
        v["IPAM"]["Config"][0]["Subnet"].as_str(),
        Some(h.subnet(4).as_str()),
    );
    ck.finish();
    assert_consistent(&h);
}

#[test]
fn del_removes_everything_is_idempotent_and_needs_no_netns() {
    let h = TestHost::started();
    let net = "delnet";
    let mut ck = Checks::new(&h);
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let conf = auto_conf(&h, version, net, 1);
        let tag = version.replace('.', "");
        let (ns, path) = h.cni_netns(&format!("d{tag}"));
        let id = cid(&h, &format!("d{tag}"));
        let before = h.host_veths();
        let r = h.cni_add(&conf, &id, &path, IF);
        ck.eq(
            &format!("{version}: ADD adds one host veth"),
            h.host_veths().len(),
            before.len() + 1,
        );

        // DEL with prevResult, then again (idempotent), then with no prevResult.
        let d = h.cni_del(&conf, &id, &path, IF, Some(&r));
        ck.check(
            format!("{version}: DEL prints nothing: {d}"),
            d.stdout_empty(),
        );
        ck.eq(
            &format!("{version}: DEL removes the host veth"),
            h.host_veths(),
            before.clone(),
        );
        ck.eq(
            &format!("{version}: DEL removes the container interface"),
            sandbox_links(&h, &ns),
            Vec::<String>::new(),
        );
        ck.check(
            format!("{version}: DEL removes the endpoint from inspect"),
            h.cni_endpoint(net, &id, None).is_none(),
        );
        let d = h.cni_del(&conf, &id, &path, IF, Some(&r));
        ck.check(
            format!("{version}: second DEL prints nothing: {d}"),
            d.stdout_empty(),
        );
        h.cni_del(&conf, &id, &path, IF, None);

        // DEL with an empty CNI_NETNS (the netns is already gone, say).
        let id2 = cid(&h, &format!("e{tag}"));
        let (ns2, path2) = h.cni_netns(&format!("e{tag}"));
        let r2 = h.cni_add(&conf, &id2, &path2, IF);
        let d = h.cni(
            &CniEnv::attachment("DEL", &id2, "", IF),
            &with_prev(&conf, &r2),
        );
        ck.check(
            format!("{version}: DEL with CNI_NETNS empty succeeds: {d}"),
            d.success(),
        );
        ck.eq(
            &format!("{version}: DEL with CNI_NETNS empty removes the host veth"),
            h.host_veths(),
            before.clone(),
        );
        ck.eq(
            &format!("{version}: DEL with CNI_NETNS empty removes the container interface"),
            sandbox_links(&h, &ns2),
            Vec::<String>::new(),
        );
        ck.check(
            format!("{version}: DEL with CNI_NETNS empty removes the endpoint"),
            h.cni_endpoint(net, &id2, None).is_none(),
        );
        // ... and with CNI_NETNS unset.
        let id3 = cid(&h, &format!("f{tag}"));
        let (_ns3, path3) = h.cni_netns(&format!("f{tag}"));
        h.cni_add(&conf, &id3, &path3, IF);
        let d = h.cni(
            &CniEnv::attachment("DEL", &id3, "", IF).unset("CNI_NETNS"),
            &conf,
        );
        ck.check(
            format!("{version}: DEL with CNI_NETNS unset succeeds: {d}"),
            d.success(),
        );
        ck.check(
            format!("{version}: DEL with CNI_NETNS unset removes the endpoint"),
            h.cni_endpoint(net, &id3, None).is_none(),
        );
        // The netns removed before DEL (a runtime that lost it).
        let id4 = cid(&h, &format!("g{tag}"));
        let (ns4, path4) = h.cni_netns(&format!("g{tag}"));
        h.cni_add(&conf, &id4, &path4, IF);
        h.must(&["ip", "netns", "delete", &ns4]);
        let d = h.cni(&CniEnv::attachment("DEL", &id4, &path4, IF), &conf);
        ck.check(
            format!("{version}: DEL after the netns was deleted succeeds: {d}"),
            d.success(),
        );
        ck.check(
            format!("{version}: DEL after the netns was deleted removes the endpoint"),
            h.cni_endpoint(net, &id4, None).is_none(),
        );
        ck.eq(
            &format!("{version}: DEL after the netns was deleted leaves no host veth"),
            h.host_veths(),
            before.clone(),
        );
    }
    // DEL of an attachment never made.
    let conf = auto_conf(&h, "1.0.0", net, 1);
    let d = h.cni(&CniEnv::attachment("DEL", &cid(&h, "never"), "", IF), &conf);
    ck.check(
        format!("DEL of an unknown attachment succeeds: {d}"),
        d.success(),
    );
    // DEL on a network that does not exist.
    let conf = h.cni_conf("1.0.0", "nosuchnet", json!({}));
    let d = h.cni(&CniEnv::attachment("DEL", &cid(&h, "never"), "", IF), &conf);
    ck.check(
        format!("DEL on a network that does not exist succeeds: {d}"),
        d.success(),
    );
    ck.finish();
    assert_consistent(&h);
}

#[test]
fn check_passes_after_add_and_fails_once_the_veth_is_gone() {
    let h = TestHost::started();
    let net = "chknet";
    let mut ck = Checks::new(&h);
    for version in ["0.4.0", "1.0.0", "1.1.0"] {
        let conf = auto_conf(&h, version, net, 1);
        let tag = version.replace('.', "");
        let (ns, path) = h.cni_netns(&format!("c{tag}"));
        let id = cid(&h, &format!("c{tag}"));
        let r = h.cni_add(&conf, &id, &path, IF);
        let c = h.cni(
            &CniEnv::attachment("CHECK", &id, &path, IF),
            &with_prev(&conf, &r),
        );
        ck.check(
            format!("{version}: CHECK right after ADD succeeds and prints nothing: {c}"),
            c.success() && c.stdout_empty(),
        );
        // Delete the host veth by hand: the pair goes, the container loses eth0.
        let host_if = r["interfaces"][0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        h.must(&["ip", "-n", &h.host_ns, "link", "del", &host_if]);
        let c = h.cni(
            &CniEnv::attachment("CHECK", &id, &path, IF),
            &with_prev(&conf, &r),
        );
        ck.check(
            format!("{version}: CHECK fails once the veth is gone: {c}"),
            !c.success() && is_error_object(&c),
        );
        ck.check(
            format!("{version}: a failed CHECK does not panic: {c}"),
            !c.panicked(),
        );
        // DEL still cleans up what is left.
        h.cni_del(&conf, &id, &path, IF, Some(&r));
        ck.check(
            format!("{version}: DEL after a failed CHECK removes the endpoint"),
            h.cni_endpoint(net, &id, None).is_none(),
        );
        let _ = ns;
    }
    // CHECK of an attachment never made: 3 (unknown container).
    let conf = auto_conf(&h, "1.0.0", net, 1);
    let (_ns, path) = h.cni_netns("unknown");
    let fake_prev = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": []});
    let c = h.cni(
        &CniEnv::attachment("CHECK", &cid(&h, "unknown"), &path, IF),
        &with_prev(&conf, &fake_prev),
    );
    ck.check(
        format!("CHECK of an unknown attachment fails with code 3: {c}"),
        !c.success() && c.code() == Some(3),
    );
    // CHECK needs 0.4.0 or later.
    let conf = auto_conf(&h, "0.3.1", net, 1);
    let (_ns, path) = h.cni_netns("old");
    let id = cid(&h, "old");
    let r = h.cni_add(&conf, &id, &path, IF);
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id, &path, IF),
        &with_prev(&conf, &r),
    );
    ck.check(
        format!("CHECK with cniVersion 0.3.1 fails with code 1 (incompatible version): {c}"),
        !c.success() && c.code() == Some(1),
    );
    ck.finish();
}

#[test]
fn check_consults_prev_result_and_the_container_side() {
    let h = TestHost::started();
    let net = "chk2";
    let conf = auto_conf(&h, "1.0.0", net, 1);
    let mut ck = Checks::new(&h);

    // prevResult names an address the attachment does not have.
    let (_ns, path) = h.cni_netns("a");
    let id = cid(&h, "a");
    let r = h.cni_add(&conf, &id, &path, IF);
    let mut wrong = r.clone();
    wrong["ips"][0]["address"] = json!(format!("{}/24", h.addr(1, 99)));
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id, &path, IF),
        &with_prev(&conf, &wrong),
    );
    ck.check(
        format!("CHECK must consult prevResult: an address the container does not have fails: {c}"),
        !c.success() && is_error_object(&c),
    );
    let mut wrong = r.clone();
    wrong["interfaces"][1]["mac"] = json!("02:00:00:00:00:99");
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id, &path, IF),
        &with_prev(&conf, &wrong),
    );
    ck.check(
        format!(
            "CHECK must consult prevResult: a MAC the container interface does not have fails: {c}"
        ),
        !c.success() && is_error_object(&c),
    );

    // The container interface loses its address (the veth pair is intact).
    let (ns_b, path_b) = h.cni_netns("b");
    let id_b = cid(&h, "b");
    let rb = h.cni_add(&conf, &id_b, &path_b, IF);
    h.must(&["ip", "-n", &ns_b, "addr", "flush", "dev", IF]);
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id_b, &path_b, IF),
        &with_prev(&conf, &rb),
    );
    ck.check(
        format!(
            "CHECK fails when the address listed in prevResult is gone from the container: {c}"
        ),
        !c.success() && is_error_object(&c),
    );

    // The container interface is renamed: CNI_IFNAME is no longer there.
    let (ns_c, path_c) = h.cni_netns("c");
    let id_c = cid(&h, "c");
    let rc = h.cni_add(&conf, &id_c, &path_c, IF);
    h.must(&["ip", "-n", &ns_c, "link", "set", IF, "down"]);
    h.must(&["ip", "-n", &ns_c, "link", "set", IF, "name", "renamed0"]);
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id_c, &path_c, IF),
        &with_prev(&conf, &rc),
    );
    ck.check(
        format!("CHECK fails when the container has no interface CNI_IFNAME any more: {c}"),
        !c.success() && is_error_object(&c),
    );
    ck.finish();
}

#[test]
fn add_accepts_a_proc_pid_netns_and_any_ifname() {
    let h = TestHost::started();
    let net = "procnet";
    let conf = auto_conf(&h, "1.1.0", net, 1);
    let mut ck = Checks::new(&h);
    // An unnamed netns held by a process, as CNI_NETNS=/proc/PID/ns/net.
    let holder = Background::spawn(
        "unshare",
        &["--net", "sleep", "60"],
        Duration::from_secs(60),
    );
    let proc_path = format!("/proc/{}/ns/net", holder.pid());
    wait_until(Duration::from_secs(5), "unshare to enter its netns", || {
        let mine = std::fs::read_link("/proc/self/ns/net").ok();
        let theirs = std::fs::read_link(&proc_path).ok();
        (theirs.is_some() && theirs != mine).then_some(())
    });
    let id = cid(&h, "proc");
    let r = h.cni_add(&conf, &id, &proc_path, "net1");
    ck.eq(
        "the container interface is named CNI_IFNAME (net1)",
        r["interfaces"][1]["name"].as_str(),
        Some("net1"),
    );
    ck.eq(
        "sandbox is the CNI_NETNS given (/proc/PID/ns/net)",
        r["interfaces"][1]["sandbox"].as_str(),
        Some(proc_path.as_str()),
    );
    let addr = r["ips"][0]["address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inside = run(
        "nsenter",
        &[
            &format!("--net={proc_path}"),
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "dev",
            "net1",
        ],
    );
    ck.check(
        format!("net1 inside /proc/PID/ns/net has {addr}: {inside}"),
        inside.success() && !addr.is_empty() && inside.stdout.contains(&addr),
    );
    let ping = run(
        "nsenter",
        &[
            &format!("--net={proc_path}"),
            "ping",
            "-n",
            "-q",
            "-c",
            "2",
            "-i",
            "0.2",
            "-W",
            "1",
            &h.addr(1, 1),
        ],
    );
    ck.check(
        format!("the /proc netns reaches its gateway: {ping}"),
        ping.success(),
    );
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id, &proc_path, "net1"),
        &with_prev(&conf, &r),
    );
    ck.check(
        format!("CHECK of a /proc netns attachment: {c}"),
        c.success(),
    );
    h.cni_del(&conf, &id, &proc_path, "net1", Some(&r));
    ck.check(
        "DEL of a /proc netns attachment removes the endpoint",
        h.cni_endpoint(net, &id, None).is_none(),
    );
    ck.eq(
        "DEL leaves no host veth",
        h.host_veths(),
        Vec::<String>::new(),
    );
    drop(holder);
    ck.finish();
}

#[test]
fn concurrent_adds_make_the_network_once_and_distinct_addresses() {
    let h = TestHost::started();
    let net = "busy";
    let conf = auto_conf(&h, "1.0.0", net, 1).to_string();
    const N: usize = 8;
    let nets: Vec<(String, String)> = (0..N).map(|i| h.cni_netns(&format!("p{i}"))).collect();
    let handles: Vec<_> = nets
        .iter()
        .enumerate()
        .map(|(i, (_, path))| {
            let env = CniEnv::attachment("ADD", &cid(&h, &format!("p{i}")), path, IF);
            let stdin = conf.clone();
            let host_ns = h.host_ns.clone();
            std::thread::spawn(move || exec_plugin(Some(&host_ns), &env, &stdin, PLUGIN_TIMEOUT))
        })
        .collect();
    let results: Vec<CniResult> = handles
        .into_iter()
        .map(|t| t.join().expect("ADD thread"))
        .collect();
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.success())
        .map(|r| r.to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {N} concurrent ADDs (first use of the network) failed:\n{}\n{}",
        failed.len(),
        failed.join("\n"),
        h.log_text()
    );
    let mut addrs: Vec<String> = results
        .iter()
        .filter_map(|r| {
            r.json.as_ref()?["ips"][0]["address"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(
        addrs.len(),
        N,
        "concurrent ADDs got distinct addresses: {addrs:?}"
    );
    assert_eq!(
        h.network_names().iter().filter(|n| *n == net).count(),
        1,
        "one network, however many ADDs raced to make it"
    );
    let first = &nets[0].0;
    for a in &addrs[1..] {
        let ip = a.split('/').next().unwrap_or_default();
        h.assert_ping(first, ip, "sandboxes of concurrent ADDs reach each other");
    }
    assert_consistent(&h);
}

#[test]
fn version_lists_the_supported_versions_without_a_daemon() {
    // No daemon at all: VERSION needs none.
    let h = TestHost::new();
    for v in ["0.4.0", "1.0.0", "1.1.0"] {
        let r = h.cni_raw(
            &CniEnv::command("VERSION"),
            &json!({"cniVersion": v}).to_string(),
        );
        assert!(r.success(), "VERSION failed: {r}");
        let j = r
            .json
            .clone()
            .unwrap_or_else(|| panic!("VERSION printed no JSON: {r}"));
        assert_eq!(
            j["cniVersion"].as_str(),
            Some(v),
            "VERSION echoes cniVersion: {r}"
        );
        let got: Vec<&str> = j["supportedVersions"]
            .as_array()
            .unwrap_or_else(|| panic!("supportedVersions is a list: {r}"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for want in SUPPORTED_VERSIONS {
            assert!(got.contains(&want), "supportedVersions lacks {want}: {r}");
        }
        assert!(r.elapsed < QUICK, "VERSION took {:?}", r.elapsed);
    }
}

#[test]
fn gc_removes_only_the_unlisted_cni_attachments_of_its_network() {
    let h = TestHost::started();
    let mut ck = Checks::new(&h);
    let conf1 = auto_conf(&h, "1.1.0", "gc1", 1);
    let conf2 = auto_conf(&h, "1.1.0", "gc2", 2);
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        let (_ns, path) = h.cni_netns(name);
        let id = cid(&h, name);
        h.cni_add(&conf1, &id, &path, IF);
        ids.push(id);
    }
    // b is on gc2 too (as eth1, in its own netns: podman's way with two networks), and a
    // CLI sandbox is on gc1.
    let path_b = format!("/run/netns/{}-b", h.id);
    h.cni_add(&conf2, &ids[1], &path_b, "eth1");
    let cli = h.sandbox("cli");
    h.connect("gc1", &cli, &[]);
    let veths_before = h.host_veths().len();

    // Valid: a/eth0, b/eth1 (b's gc2 attachment: the pair is the key, not the id) and
    // one that does not exist.
    let mut gc = conf1.clone();
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": ids[0], "ifname": IF},
        {"containerID": ids[1], "ifname": "eth1"},
        {"containerID": cid(&h, "gone"), "ifname": IF},
    ]);
    let r = h.cni(&CniEnv::command("GC"), &gc);
    ck.check(
        format!("GC succeeds and prints nothing: {r}"),
        r.success() && r.stdout_empty(),
    );
    ck.check(
        "GC keeps the listed attachment a/eth0",
        h.cni_endpoint("gc1", &ids[0], Some(IF)).is_some(),
    );
    for (i, name) in ["b", "c"].iter().enumerate() {
        ck.check(
            format!("GC removes the unlisted attachment {name}/eth0"),
            h.cni_endpoint("gc1", &ids[i + 1], None).is_none(),
        );
        let links = sandbox_links(&h, &format!("{}-{name}", h.id));
        ck.check(
            format!("GC removes {name}'s eth0: links {links:?}"),
            !links.iter().any(|l| l == IF),
        );
    }
    ck.check(
        "GC of gc1 keeps b's attachment to gc2",
        h.cni_endpoint("gc2", &ids[1], Some("eth1")).is_some(),
    );
    ck.check(
        "GC keeps endpoints not made through CNI",
        h.endpoint("gc1", &cli).is_some(),
    );
    ck.eq(
        "GC removed exactly two host veths",
        h.host_veths().len(),
        veths_before - 2,
    );
    let path_a = format!("{}-a", h.id);
    ck.check(
        "the kept attachment a still reaches its gateway",
        h.ping(&path_a, &h.addr(1, 1)),
    );
    // A second GC with the same list changes nothing.
    let snap = snapshot(&h);
    let r = h.cni(&CniEnv::command("GC"), &gc);
    ck.check(format!("a repeated GC succeeds: {r}"), r.success());
    assert_same(&snap, &snapshot(&h), "a repeated GC");
    // GC needs 1.1.0.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    old["cni.dev/valid-attachments"] = json!([]);
    let r = h.cni(&CniEnv::command("GC"), &old);
    ck.check(
        format!("GC with cniVersion 1.0.0 fails with code 1: {r}"),
        !r.success() && r.code() == Some(1),
    );
    assert_same(&snap, &snapshot(&h), "GC with cniVersion 1.0.0");
    // GC without `cni.dev/valid-attachments` (a runtime must send it): not "remove all".
    let mut bare = conf1.clone();
    bare.as_object_mut()
        .map(|m| m.remove("cni.dev/valid-attachments"));
    let r = h.cni(&CniEnv::command("GC"), &bare);
    ck.check(
        format!("GC without cni.dev/valid-attachments must not remove the attachments (refuse it, or keep all): {r}"),
        h.cni_endpoint("gc1", &ids[0], Some(IF)).is_some(),
    );
    ck.finish();
    assert_consistent(&h);
}

#[test]
fn status_is_ok_with_the_daemon_and_50_without_and_add_says_11() {
    let mut h = TestHost::started();
    let conf = auto_conf(&h, "1.1.0", "stnet", 1);
    let r = h.cni(&CniEnv::command("STATUS"), &conf);
    assert!(
        r.success() && r.stdout_empty(),
        "STATUS with the daemon running: want exit 0 and no output, got {r}"
    );
    let (ns, path) = h.cni_netns("a");
    let id = cid(&h, "a");
    let prev = h.cni_add(&conf, &id, &path, IF);

    h.stop();
    let r = h.cni(&CniEnv::command("STATUS"), &conf);
    expect_error(&r, Some(50), "STATUS with the daemon stopped");
    let (ns_b, path_b) = h.cni_netns("b");
    let r = h.cni(
        &CniEnv::attachment("ADD", &cid(&h, "b"), &path_b, IF),
        &conf,
    );
    expect_error(&r, Some(11), "ADD with the daemon stopped");
    assert_eq!(
        sandbox_links(&h, &ns_b),
        Vec::<String>::new(),
        "ADD with the daemon stopped left an interface in the sandbox"
    );
    // STATUS needs 1.1.0.
    h.start_daemon();
    let mut old = conf.clone();
    old["cniVersion"] = json!("1.0.0");
    let r = h.cni(&CniEnv::command("STATUS"), &old);
    expect_error(&r, Some(1), "STATUS with cniVersion 1.0.0");
    let r = h.cni(&CniEnv::command("STATUS"), &conf);
    assert!(r.success(), "STATUS after the daemon came back: {r}");
    // The attachment made before the stop is intact.
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id, &path, IF),
        &with_prev(&conf, &prev),
    );
    assert!(
        c.success(),
        "CHECK after a daemon restart: {c}\n{}",
        h.log_text()
    );
    h.assert_ping(
        &ns,
        &h.addr(1, 1),
        "the CNI container reaches its gateway after a restart",
    );
    assert_consistent(&h);
}

#[test]
fn add_after_a_daemon_restart_and_attachments_survive_it() {
    let mut h = TestHost::started();
    let conf = auto_conf(&h, "1.0.0", "rsnet", 1);
    let (ns_a, path_a) = h.cni_netns("a");
    let id_a = cid(&h, "a");
    let ra = h.cni_add(&conf, &id_a, &path_a, IF);
    h.restart();
    let (ns_b, path_b) = h.cni_netns("b");
    let id_b = cid(&h, "b");
    let rb = h.cni_add(&conf, &id_b, &path_b, IF);
    let ip = |r: &Value| {
        r["ips"][0]["address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .unwrap_or_default()
            .to_string()
    };
    assert_ne!(
        ip(&ra),
        ip(&rb),
        "a restart must not hand out an address twice"
    );
    h.assert_ping(&ns_a, &ip(&rb), "a (made before the restart) -> b (after)");
    h.assert_ping(&ns_b, &ip(&ra), "b (made after the restart) -> a (before)");
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id_a, &path_a, IF),
        &with_prev(&conf, &ra),
    );
    assert!(
        c.success(),
        "CHECK of an attachment made before the restart: {c}\n{}",
        h.log_text()
    );
    h.cni_del(&conf, &id_a, &path_a, IF, Some(&ra));
    assert!(
        h.cni_endpoint("rsnet", &id_a, None).is_none(),
        "DEL after a restart"
    );
    assert_consistent(&h);
}

#[test]
fn runtime_config_sets_ip_mac_ports_and_aliases() {
    let (h, o) = TestHost::with_uplink(&[]);
    let net = "rcnet";
    let mut ck = Checks::new(&h);
    let static_ip = format!("{}/24", h.addr(1, 77));
    let mac = "02:11:22:33:44:55";
    let conf = h.cni_conf(
        "1.0.0",
        net,
        json!({
            "subnet": h.subnet(1),
            "capabilities": {"portMappings": true, "ips": true, "mac": true, "aliases": true},
            "runtimeConfig": {
                "portMappings": [
                    {"hostPort": 18080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                    {"hostPort": 15353, "containerPort": 53, "protocol": "udp"},
                ],
                "ips": [static_ip],
                "mac": mac,
                "aliases": {net: ["web", "db"]},
            },
        }),
    );
    let (ns, path) = h.cni_netns("a");
    let id = cid(&h, "a");
    let r = h.cni_add(&conf, &id, &path, IF);
    ck.eq(
        "runtimeConfig.ips: the result's address",
        r["ips"][0]["address"].as_str(),
        Some(static_ip.as_str()),
    );
    ck.eq(
        "runtimeConfig.mac: the result's container interface MAC",
        r["interfaces"][1]["mac"].as_str(),
        Some(mac),
    );
    let link = sandbox_link(&h, &ns, IF).unwrap_or_default();
    ck.eq(
        "runtimeConfig.mac: the kernel's MAC",
        link["address"].as_str(),
        Some(mac),
    );
    ck.eq(
        "runtimeConfig.ips: the kernel's address",
        v4_addrs(&link),
        vec![static_ip.clone()],
    );
    match h.cni_endpoint(net, &id, Some(IF)) {
        None => ck.check("inspect lists the attachment", false),
        Some(ep) => {
            let aliases: Vec<&str> = ep["Aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            ck.check(
                format!("runtimeConfig.aliases recorded in inspect: {ep}"),
                aliases.contains(&"web") && aliases.contains(&"db"),
            );
            ck.eq("inspect MacAddress", ep["MacAddress"].as_str(), Some(mac));
        }
    }
    for line in ["80/tcp -> 0.0.0.0:18080", "53/udp -> 0.0.0.0:15353"] {
        ck.check(
            format!(
                "runtimeConfig.portMappings shows in `port ls`: {line:?} in\n{}",
                h.port_ls(None)
            ),
            h.port_ls(None).contains(line),
        );
    }
    let ip = h.addr(1, 77);
    {
        let _tcp = EchoServer::start(&ns, Proto::Tcp, "0.0.0.0:80");
        let _udp = EchoServer::start(&ns, Proto::Udp, "0.0.0.0:53");
        for (proto, port) in [(Proto::Tcp, 18080u16), (Proto::Udp, 15353)] {
            match ask(proto, &o.ns, &o.host_ip, port, T) {
                Err(e) => ck.check(
                    format!(
                        "{}: outside -> {}:{port} reaches the container: {e}",
                        proto.name(),
                        o.host_ip
                    ),
                    false,
                ),
                Ok(rep) => ck.eq(
                    &format!(
                        "{}: the container sees the outside client's address",
                        proto.name()
                    ),
                    rep.seen_from,
                    o.ip.clone(),
                ),
            }
        }
        ck.check(
            format!("the container at {ip} pings its gateway"),
            h.ping(&ns, &h.addr(1, 1)),
        );
        // Egress: masqueraded behind the uplink's address (ipMasq defaults to true).
        let out = EchoServer::start(&o.ns, Proto::Tcp, &format!("{}:0", o.ip));
        match ask(Proto::Tcp, &ns, &o.ip, out.port(), T) {
            Err(e) => ck.check(format!("container -> outside {}: {e}", o.ip), false),
            Ok(rep) => ck.eq(
                "container -> outside is masqueraded behind the uplink's address",
                rep.seen_from,
                o.host_ip.clone(),
            ),
        }
    }
    h.cni_del(&conf, &id, &path, IF, Some(&r));
    let _tcp = EchoServer::start(&ns, Proto::Tcp, "0.0.0.0:80");
    ck.check(
        "after DEL the port is no longer published",
        ask(Proto::Tcp, &o.ns, &o.host_ip, 18080, T_FAIL).is_err(),
    );
    ck.check(
        format!("after DEL `port ls` is empty: {}", h.port_ls(None)),
        h.port_ls(None).trim().is_empty(),
    );
    ck.finish();
    assert_consistent(&h);
}

/// stdout is exactly one JSON error object: integer `code`, non-empty string `msg`,
/// string `cniVersion`.
fn is_error_object(r: &CniResult) -> bool {
    match &r.json {
        Some(Value::Object(m)) => {
            m.get("code").is_some_and(Value::is_u64)
                && m.get("msg")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                && m.get("cniVersion").is_some_and(Value::is_string)
        }
        _ => false,
    }
}

/// What of the error contract `r` breaks: exit status 1, one JSON error object with
/// `code` (if given), quickly, no panic on stderr.
fn error_breaches(r: &CniResult, code: Option<u64>) -> Vec<&'static str> {
    let mut bad = Vec::new();
    if r.run.code != Some(1) || r.run.timed_out {
        bad.push("exit status 1");
    }
    if !is_error_object(r) {
        bad.push("stdout is one JSON object {cniVersion, code, msg}");
    }
    if code.is_some() && r.code() != code {
        bad.push("the error code");
    }
    if r.panicked() {
        bad.push("no panic on stderr");
    }
    if r.elapsed >= QUICK {
        bad.push("an answer within 5 s");
    }
    bad
}

/// Panics unless `r` keeps the error contract.
fn expect_error(r: &CniResult, code: Option<u64>, what: &str) {
    let bad = error_breaches(r, code);
    assert!(
        bad.is_empty(),
        "{what}: want code {code:?}; failed: {}\n{r}",
        bad.join(", ")
    );
}

#[test]
fn every_error_is_one_json_object_and_leaves_nothing_behind() {
    let h = TestHost::started();
    let net = "errnet";
    let conf = auto_conf(&h, "1.0.0", net, 1);
    // One good attachment first, so the network exists and state is non-trivial.
    let (ns0, path0) = h.cni_netns("ok");
    let id0 = cid(&h, "ok");
    let r0 = h.cni_add(&conf, &id0, &path0, IF);
    let (ns, path) = h.cni_netns("x");
    let id = cid(&h, "x");
    let add = CniEnv::attachment("ADD", &id, &path, IF);
    let body = conf.to_string();
    let with = |extra: Value| {
        let mut c = conf.clone();
        c["capabilities"] = json!({"ips": true, "mac": true, "portMappings": true});
        cni_merge(&mut c, extra);
        c.to_string()
    };
    let new_net = |extra: Value| {
        let mut c = h.cni_conf("1.0.0", "fresh", json!({}));
        cni_merge(&mut c, extra);
        c.to_string()
    };
    let mut no_name = conf.clone();
    no_name.as_object_mut().map(|m| m.remove("name"));

    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, CniEnv, String, Option<u64>)> = vec![
        (
            "CNI_COMMAND missing",
            add.clone().unset("CNI_COMMAND"),
            body.clone(),
            Some(4),
        ),
        (
            "CNI_COMMAND unknown",
            add.clone().set("CNI_COMMAND", "FROB"),
            body.clone(),
            Some(4),
        ),
        (
            "CNI_COMMAND lower case",
            add.clone().set("CNI_COMMAND", "add"),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_CONTAINERID missing",
            add.clone().unset("CNI_CONTAINERID"),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_CONTAINERID empty",
            add.clone().set("CNI_CONTAINERID", ""),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_NETNS missing",
            add.clone().unset("CNI_NETNS"),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_NETNS empty",
            add.clone().set("CNI_NETNS", ""),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_IFNAME missing",
            add.clone().unset("CNI_IFNAME"),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_IFNAME empty",
            add.clone().set("CNI_IFNAME", ""),
            body.clone(),
            Some(4),
        ),
        (
            "ADD: CNI_IFNAME too long",
            add.clone().set("CNI_IFNAME", "eth0123456789abcdef"),
            body.clone(),
            None,
        ),
        (
            "ADD: CNI_NETNS does not exist",
            add.clone().set("CNI_NETNS", "/run/netns/ndt-no-such-netns"),
            body.clone(),
            None,
        ),
        (
            "DEL: CNI_CONTAINERID missing",
            add.clone()
                .set("CNI_COMMAND", "DEL")
                .unset("CNI_CONTAINERID"),
            body.clone(),
            Some(4),
        ),
        (
            "DEL: CNI_IFNAME missing",
            add.clone().set("CNI_COMMAND", "DEL").unset("CNI_IFNAME"),
            body.clone(),
            Some(4),
        ),
        (
            "CHECK: CNI_NETNS missing",
            add.clone().set("CNI_COMMAND", "CHECK").unset("CNI_NETNS"),
            body.clone(),
            Some(4),
        ),
        (
            "CNI_ARGS: unknown key without IgnoreUnknown",
            add.clone().set("CNI_ARGS", "FOO=bar"),
            body.clone(),
            Some(2),
        ),
        (
            "CNI_ARGS: not KEY=VALUE",
            add.clone().set("CNI_ARGS", "IgnoreUnknown=1;FOO"),
            body.clone(),
            Some(4),
        ),
        (
            "stdin not JSON",
            add.clone(),
            "{\"cniVersion\": \"1.0.0\", ".into(),
            Some(6),
        ),
        ("stdin empty", add.clone(), String::new(), Some(6)),
        (
            "stdin garbage bytes",
            add.clone(),
            "\u{1}\u{2}not json at all".into(),
            Some(6),
        ),
        (
            "cniVersion unsupported (9.9.9)",
            add.clone(),
            with(json!({"cniVersion": "9.9.9"})),
            Some(1),
        ),
        (
            "cniVersion unsupported (0.2.0)",
            add.clone(),
            with(json!({"cniVersion": "0.2.0"})),
            Some(1),
        ),
        (
            "cniVersion not a version",
            add.clone(),
            with(json!({"cniVersion": "banana"})),
            Some(1),
        ),
        (
            "network name missing",
            add.clone(),
            no_name.to_string(),
            Some(7),
        ),
        (
            "new network: bad subnet",
            add.clone(),
            new_net(json!({"subnet": "10.1.2.300/24"})),
            Some(7),
        ),
        (
            "new network: subnet not a CIDR",
            add.clone(),
            new_net(json!({"subnet": "banana"})),
            Some(7),
        ),
        (
            "new network: gateway outside the subnet",
            add.clone(),
            new_net(json!({"subnet": h.subnet(5), "gateway": h.addr(6, 1)})),
            Some(7),
        ),
        (
            "new network: mtu out of range",
            add.clone(),
            new_net(json!({"subnet": h.subnet(5), "mtu": 10})),
            Some(7),
        ),
        (
            "runtimeConfig.ips outside the subnet",
            add.clone(),
            with(json!({"runtimeConfig": {"ips": [format!("{}/24", h.addr(9, 5))]}})),
            Some(7),
        ),
        (
            "runtimeConfig.mac not a MAC",
            add.clone(),
            with(json!({"runtimeConfig": {"mac": "zz:zz"}})),
            Some(7),
        ),
        (
            "runtimeConfig.portMappings bad protocol",
            add.clone(),
            with(
                json!({"runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]}}),
            ),
            Some(7),
        ),
        (
            "ADD of the same container id and ifname again",
            add.clone()
                .set("CNI_CONTAINERID", &id0)
                .set("CNI_NETNS", &path0),
            body.clone(),
            None,
        ),
        (
            "ADD of an ifname that exists in the netns",
            add.clone().set("CNI_NETNS", &path0),
            body.clone(),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (what, env, stdin, code) in cases {
        let before = snapshot(&h);
        let links_before = sandbox_links(&h, &ns);
        let r = h.cni_raw(&env, &stdin);
        let bad = error_breaches(&r, code);
        if !bad.is_empty() {
            failures.push(format!(
                "{what}: want code {code:?}; failed: {}\n{r}",
                bad.join(", ")
            ));
        }
        let after = snapshot(&h);
        if after != before {
            failures.push(format!(
                "{what}: changed the daemon's or the kernel's state\n--- before ---\n{}\n--- after ---\n{}",
                serde_json::to_string_pretty(&before).unwrap_or_default(),
                serde_json::to_string_pretty(&after).unwrap_or_default()
            ));
        }
        let links = sandbox_links(&h, &ns);
        if links != links_before {
            failures.push(format!(
                "{what}: the sandbox's links changed from {links_before:?} to {links:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} error case(s) broke the contract:\n\n{}\n{}",
        failures.len(),
        failures.join("\n\n"),
        h.log_text()
    );
    // The good attachment is intact.
    let c = h.cni(
        &CniEnv::attachment("CHECK", &id0, &path0, IF),
        &with_prev(&conf, &r0),
    );
    assert!(
        c.success(),
        "CHECK of the good attachment after the errors: {c}\n{}",
        h.log_text()
    );
    h.assert_ping(
        &ns0,
        &h.addr(1, 1),
        "the good attachment still reaches its gateway",
    );
    assert_consistent(&h);
}

/// [`netd_tests::harness::cni::merge`].
fn cni_merge(base: &mut Value, extra: Value) {
    netd_tests::harness::cni::merge(base, extra)
}
