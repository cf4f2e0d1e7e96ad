//! Connectivity within a network: ICMP, TCP and UDP between two sandboxes and to the
//! gateway, through the eBPF dataplane (no Linux bridge, no firewall rule), and a sandbox
//! on two networks attached and detached while it runs.
use std::time::Duration;

use netd_tests::harness::check::{self, assert_consistent};
use netd_tests::harness::netns::{tcp_client_script, tcp_server, udp_client_script, udp_server};
use netd_tests::harness::{firewall_rules, stat_in, TestHost};

/// TCP `ping`/`pong` from `from` to `to_ip` (a server in `to`), panicking with context.
fn assert_tcp(h: &TestHost, from: &str, to: &str, to_ip: &str) {
    let server = tcp_server(to, to_ip, Duration::from_secs(8));
    let port = server.port;
    let r = h.sh_in(from, &tcp_client_script(to_ip, port));
    let got = server.result();
    assert!(
        r.success() && r.stdout.trim() == "pong" && got.as_deref() == Ok("ping"),
        "TCP {from} -> {to_ip}:{port}: client {r}\nserver: {got:?}\n{}",
        h.log_text()
    );
}

/// UDP `ping`/`pong` from `from` to `to_ip`, panicking with context.
fn assert_udp(h: &TestHost, from: &str, to: &str, to_ip: &str) {
    let server = udp_server(to, to_ip, Duration::from_secs(8));
    let r = h.sh_in(from, &udp_client_script(to_ip, server.port));
    let got = server.result();
    assert!(
        r.success() && r.stdout.trim() == "pong" && got.as_deref() == Ok("ping"),
        "UDP {from} -> {to_ip}: client {r}\nserver: {got:?}\n{}",
        h.log_text()
    );
}

#[test]
fn peers_reach_each_other_and_the_gateway_without_bridge_or_firewall() {
    let mut h = TestHost::new();
    let rules_before = firewall_rules(&h.host_ns);
    h.start_daemon();

    h.create_network("front", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    let ip_a = h.connect("front", &a, &[]);
    let ip_b = h.connect("front", &b, &[]);
    let gw = h.gateway_of("front");
    assert_ne!(ip_a, ip_b);

    let peer_before = h.stat("front", "delivery", "peer");
    h.assert_ping(&a, &ip_b, "same network a -> b");
    h.assert_ping(&b, &ip_a, "same network b -> a");
    h.assert_ping(&a, &gw, "sandbox -> its gateway");
    h.assert_ping(&b, &gw, "sandbox -> its gateway");
    assert_tcp(&h, &a, &b, &ip_b);
    assert_tcp(&h, &b, &a, &ip_a);
    assert_udp(&h, &a, &b, &ip_b);
    assert_udp(&h, &b, &a, &ip_a);
    // The gateway is the host: a TCP server in the host netns on the gateway address.
    assert_tcp(&h, &a, &h.host_ns, &gw);

    let stats = h.stats();
    let peer = stat_in(&stats, "front", "delivery", "peer");
    assert!(
        peer > peer_before,
        "contract: peer deliveries of `front` must grow with traffic between sandboxes ({peer_before} -> {peer}); stats: {stats:#?}"
    );
    assert!(
        stat_in(&stats, "front", "delivery", "host") > 0,
        "contract: pinging the gateway counts `host` deliveries; stats: {stats:#?}"
    );

    let bridges = h.must(&["ip", "-n", &h.host_ns, "link", "show", "type", "bridge"]);
    assert_eq!(
        bridges.trim(),
        "",
        "issue: no Linux bridge device may exist"
    );
    let rules_after = firewall_rules(&h.host_ns);
    assert_eq!(
        rules_before, rules_after,
        "issue: iptables-save / nft list ruleset must be unchanged by netd"
    );
    assert_consistent(&h);
}

/// The plumbing the contract spells out: veth names, MACs, gateway on lo, routes.
#[test]
fn endpoint_plumbing_follows_the_contract() {
    let h = TestHost::started();
    h.create_network("plumb", 1, &[]);
    let a = h.sandbox("a");
    let ip = h.connect("plumb", &a, &[]);
    let ep = h.endpoint("plumb", &a).expect("endpoint in inspect");
    let gw = h.gateway_of("plumb");

    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    let want_mac = format!(
        "02:42:{:02x}:{:02x}:{:02x}:{:02x}",
        octets[0], octets[1], octets[2], octets[3]
    );
    assert_eq!(
        ep["MacAddress"].as_str(),
        Some(want_mac.as_str()),
        "contract: endpoint MAC is 02:42 + IP bytes: {ep}"
    );
    assert_eq!(check::ipv4_address(&ep), format!("{ip}/24"));
    assert_eq!(
        ep["Interface"].as_str(),
        Some("eth0"),
        "first interface is eth0"
    );

    // Sandbox side: eth0 with the MAC and IP, default route via the gateway.
    let links = h.links(&a);
    let eth0 = links
        .iter()
        .find(|l| l["ifname"] == "eth0")
        .unwrap_or_else(|| panic!("no eth0 in {a}: {links:?}"));
    assert_eq!(
        eth0["address"].as_str(),
        Some(want_mac.as_str()),
        "eth0 MAC"
    );
    let addr = h.must(&["ip", "-n", &a, "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(addr.contains(&format!("{ip}/24")), "eth0 address: {addr}");
    let route = h.must(&["ip", "-n", &a, "route", "show", "default"]);
    assert!(
        route.contains(&format!("default via {gw} dev eth0")),
        "issue: default route via the gateway: {route:?}"
    );

    // Host side: nd + 12 hex of the endpoint id, MAC = gateway MAC, /32 route, permanent neigh.
    let eid = ep["EndpointID"].as_str().expect("EndpointID");
    assert!(
        eid.len() >= 12 && eid.chars().all(|c| c.is_ascii_hexdigit()),
        "EndpointID {eid:?}"
    );
    let veth = format!("nd{}", &eid[..12]);
    assert_eq!(
        h.host_veths(),
        vec![veth.clone()],
        "contract: host veth name"
    );
    let g: Vec<u8> = gw.split('.').map(|o| o.parse().unwrap()).collect();
    let gw_mac = format!("02:4e:{:02x}:{:02x}:{:02x}:{:02x}", g[0], g[1], g[2], g[3]);
    let host_link = h.links(&h.host_ns);
    let hv = host_link
        .iter()
        .find(|l| l["ifname"] == veth.as_str())
        .unwrap();
    assert_eq!(
        hv["address"].as_str(),
        Some(gw_mac.as_str()),
        "contract: host veth MAC = gateway MAC"
    );
    let r = h.must(&["ip", "-n", &h.host_ns, "route", "show", &format!("{ip}/32")]);
    assert!(
        r.contains(&format!("dev {veth}")),
        "contract: /32 route on the host veth: {r:?}"
    );
    let n = h.must(&["ip", "-n", &h.host_ns, "neigh", "show", &ip, "dev", &veth]);
    assert!(
        n.contains(&want_mac) && n.contains("PERMANENT"),
        "contract: permanent neighbor entry for {ip}: {n:?}"
    );
    assert!(
        h.gateway_addrs().contains(&format!("{gw}/32")),
        "contract: gateway {gw}/32 on lo with label lo:netd: {:?}",
        h.gateway_addrs()
    );
    let filters = h.must(&[
        "tc", "-n", &h.host_ns, "filter", "show", "dev", &veth, "ingress",
    ]);
    assert!(
        filters.contains("from_sandbox") && filters.contains("direct-action"),
        "contract: from_sandbox as a direct-action tc filter at ingress of {veth}: {filters:?}"
    );
    assert_consistent(&h);
}

#[test]
fn sandbox_on_two_networks_attaches_and_detaches_while_running() {
    let h = TestHost::started();
    h.create_network("red", 1, &[]);
    h.create_network("blue", 2, &[]);
    let s = h.sandbox("s");
    let r = h.sandbox("r");
    let b = h.sandbox("b");
    let ip_r = h.connect("red", &r, &[]);
    let ip_b = h.connect("blue", &b, &[]);
    let s_red = h.connect("red", &s, &[]);
    let s_blue = h.connect("blue", &s, &[]);
    assert_eq!(
        h.endpoint("blue", &s).unwrap()["Interface"].as_str(),
        Some("eth1"),
        "contract: second attachment is eth1"
    );
    assert!(h.link_names(&s).contains(&"eth1".to_string()));

    h.assert_ping(&s, &ip_r, "s -> red peer over eth0");
    h.assert_ping(&s, &ip_b, "s -> blue peer over eth1");
    h.assert_ping(&r, &s_red, "red peer -> s");
    h.assert_ping(&b, &s_blue, "blue peer -> s");
    assert_consistent(&h);

    h.disconnect("blue", &s);
    assert!(
        !h.link_names(&s).contains(&"eth1".to_string()),
        "disconnect must remove eth1 from the running sandbox: {:?}",
        h.link_names(&s)
    );
    assert!(
        h.endpoint("blue", &s).is_none(),
        "inspect still lists s on blue"
    );
    h.assert_ping(&s, &ip_r, "eth0 keeps working after eth1 is detached");
    h.assert_no_ping(&b, &s_blue, "old blue address of s is gone");
    assert_consistent(&h);

    let again = h.connect("blue", &s, &[]);
    assert_eq!(
        h.endpoint("blue", &s).unwrap()["Interface"].as_str(),
        Some("eth1"),
        "contract: lowest free ethN is reused"
    );
    h.assert_ping(&s, &ip_b, "reconnected eth1 works");
    h.assert_ping(&b, &again, "blue peer reaches s again");
    h.assert_ping(&s, &ip_r, "eth0 still works");
    assert_consistent(&h);
}

#[test]
fn broadcast_and_arp_stay_within_the_network() {
    let h = TestHost::started();
    h.create_network("flat", 1, &[]);
    let a = h.sandbox("a");
    let b = h.sandbox("b");
    h.connect("flat", &a, &[]);
    let ip_b = h.connect("flat", &b, &[]);
    let before = h.stats();
    // arping-free ARP check: a fresh neighbor lookup must resolve b's MAC.
    h.assert_ping(&a, &ip_b, "a -> b");
    let neigh = h.must(&["ip", "-n", &a, "neigh", "show", &ip_b]);
    let want = h.endpoint("flat", &b).unwrap()["MacAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        neigh.contains(&want),
        "a resolved {ip_b} to {neigh:?}, want {want}"
    );
    // Broadcast ping reaches the other member (it must answer broadcasts for that).
    h.must(&[
        "ip",
        "netns",
        "exec",
        &b,
        "sysctl",
        "-qw",
        "net.ipv4.icmp_echo_ignore_broadcasts=0",
    ]);
    let bcast = h.addr(1, 255);
    let r = h.exec_in(
        &a,
        &[
            "ping", "-n", "-b", "-c", "2", "-i", "0.2", "-W", "1", &bcast,
        ],
    );
    assert!(
        r.success(),
        "broadcast ping within the network: {r}\n{}",
        h.log_text()
    );
    let after = h.stats();
    assert!(
        stat_in(&after, "flat", "delivery", "flood")
            > stat_in(&before, "flat", "delivery", "flood"),
        "contract: broadcast counts `flood` deliveries: {after:#?}"
    );
}
