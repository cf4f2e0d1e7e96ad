//! Prints the BPF_PROG_TEST_RUN cost of `from_sandbox` on each fast-path case, one JSON
//! line each: {"case":"...","ns_per_packet":N}. Used by `cargo xtask bench`. Needs root.
//!
//! Usage: prog-cost [REPEAT]   (default 1000000 runs per case; the kernel reports the mean)
//!
//! Every case leaves its frame unchanged, so all runs of a case take the same path (the
//! gateway ARP reply rewrites its frame and is therefore not measured here).

use std::net::Ipv4Addr;

use anyhow::Context as _;
use netd::dataplane::{Dataplane, NetworkEntry, TEST_RUN_IFINDEX};
use netd_common::EndpointInfo;
use netd_tests::packets::{arp_request, endpoint_mac, gateway_mac, udp, BROADCAST_MAC};

fn endpoint(host_ifindex: u32, net_id: u32, ip: Ipv4Addr) -> EndpointInfo {
    EndpointInfo {
        host_ifindex,
        net_id,
        ip: ip.octets(),
        mac: endpoint_mac(ip),
        _pad: [0; 2],
    }
}

fn main() -> anyhow::Result<()> {
    let repeat: u32 = match std::env::args().nth(1) {
        Some(arg) => arg.parse().context("REPEAT must be a number")?,
        None => 1_000_000,
    };

    let gw = Ipv4Addr::new(10, 1, 0, 1);
    let net = NetworkEntry {
        net_id: 1,
        subnet: "10.1.0.0/24".parse()?,
        gateway: gw,
        gateway_mac: gateway_mac(gw),
        icc: true,
        internal: false,
        masquerade: true,
    };
    let me = Ipv4Addr::new(10, 1, 0, 2);
    let peer = Ipv4Addr::new(10, 1, 0, 3);
    // Other members on made-up ifindexes: their flood copies fail fast in the kernel,
    // so "flood" measures the member walk, not the clone.
    let mut endpoints = vec![endpoint(TEST_RUN_IFINDEX, 1, me)];
    endpoints.extend((0..8).map(|i| endpoint(1000 + i, 1, Ipv4Addr::new(10, 1, 0, 3 + i as u8))));

    let mut dp = Dataplane::open_unpinned().context("loading the dataplane (root needed)")?;
    dp.sync(std::slice::from_ref(&net), &endpoints)?;

    let my_mac = endpoint_mac(me);
    let cases: [(&str, Vec<u8>); 7] = [
        ("peer", udp(endpoint_mac(peer), my_mac, me, peer, 18)),
        ("gateway-host", udp(gateway_mac(gw), my_mac, me, gw, 18)),
        (
            "outside-host",
            udp(gateway_mac(gw), my_mac, me, Ipv4Addr::new(8, 8, 8, 8), 18),
        ),
        ("arp-peer", arp_request(my_mac, me, peer)),
        (
            "flood-9-members",
            udp(BROADCAST_MAC, my_mac, me, Ipv4Addr::new(10, 1, 0, 255), 18),
        ),
        (
            "drop-spoofed-ip",
            udp(
                endpoint_mac(peer),
                my_mac,
                Ipv4Addr::new(10, 1, 0, 99),
                peer,
                18,
            ),
        ),
        (
            "drop-unknown-destination",
            udp(
                gateway_mac(gw),
                my_mac,
                me,
                Ipv4Addr::new(10, 1, 0, 200),
                18,
            ),
        ),
    ];
    for (case, frame) in &cases {
        measure(&mut dp, case, frame, repeat)?;
    }
    // The cheapest exit: one missed lookup and a counter (close to the harness's own cost).
    dp.remove_endpoint(&endpoints[0])?;
    measure(&mut dp, "drop-unknown-endpoint", &cases[0].1, repeat)?;
    Ok(())
}

fn measure(dp: &mut Dataplane, case: &str, frame: &[u8], repeat: u32) -> anyhow::Result<()> {
    dp.test_run(frame, 10_000)
        .with_context(|| format!("warming up {case}"))?;
    let out = dp
        .test_run(frame, repeat)
        .with_context(|| format!("running {case}"))?;
    println!(
        "{}",
        serde_json::json!({ "case": case, "ns_per_packet": out.avg_ns })
    );
    Ok(())
}
