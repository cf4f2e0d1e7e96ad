//! Prints the BPF_PROG_TEST_RUN cost of `from_sandbox` on each fast-path case, one JSON
//! line each: {"case":"...","ns_per_packet":N}. Used by `cargo xtask bench`. Needs root.
//!
//! Usage: prog-cost [REPEAT]   (default 1000000 runs per case; the kernel reports the mean)
//!
//! Every case but two leaves its frame unchanged, so all runs of a case take the same path
//! (the gateway ARP reply rewrites its frame and is therefore not measured here).
//!
//! The two exceptions are the overlay's: "encap" (`from_sandbox`, to an endpoint on another
//! host) grows its frame and "decap" (`from_uplink`, VXLAN from another host) shrinks it,
//! and BPF_PROG_TEST_RUN hands each repeat the frame as the previous run left it. So they
//! run once per call, many calls, timed by the kernel's BPF statistics (run time and count
//! of the program alone, `BPF_ENABLE_STATS`). They run in a throwaway netns whose route to
//! the other host's tunnel address the encapsulation looks up.

use std::net::Ipv4Addr;

use anyhow::{bail, Context as _};
use netd::dataplane::{Dataplane, NetworkEntry, TEST_RUN_IFINDEX};
use netd_common::{EndpointInfo, RemoteEndpoint, PROG_FROM_SANDBOX, PROG_FROM_UPLINK};
use netd_tests::packets::{arp_request, endpoint_mac, gateway_mac, udp, vxlan, Mac, BROADCAST_MAC};
use netd_tests::uplink_netns::{in_uplink_netns, ROUTER, ROUTER_MAC, UPLINK_IP, UPLINK_MAC};

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
    drop(dp);

    let runs = (repeat / 10).clamp(1_000, 200_000);
    in_uplink_netns("ndcost", move |_| overlay_cases(&net, &endpoints, runs))?
}

/// This host's tunnel address is the uplink's on `up0`; the other host is its next hop.
const LOCAL: Ipv4Addr = UPLINK_IP;
const VTEP: Ipv4Addr = ROUTER;
const LOCAL_MAC: Mac = UPLINK_MAC;
const VTEP_MAC: Mac = ROUTER_MAC;
const VNI: u32 = 256;

/// "encap" and "decap": the same world plus an endpoint of its network on another host.
fn overlay_cases(net: &NetworkEntry, endpoints: &[EndpointInfo], runs: u32) -> anyhow::Result<()> {
    let mut dp = Dataplane::open_unpinned().context("loading the dataplane (root needed)")?;
    dp.sync(std::slice::from_ref(net), endpoints)?;
    dp.set_overlay(LOCAL, "up0")?;
    dp.put_vni(VNI, net.net_id)?;
    let remote = Ipv4Addr::new(10, 1, 0, 50);
    dp.put_remote_endpoint(
        remote,
        &RemoteEndpoint {
            vtep: VTEP.octets(),
            vni: VNI,
            net_id: net.net_id,
            mac: endpoint_mac(remote),
            _pad: [0; 2],
        },
    )?;
    let me = Ipv4Addr::from(endpoints[0].ip);
    let peer = Ipv4Addr::from(endpoints[1].ip);
    let my_mac = endpoint_mac(me);
    let encap = udp(gateway_mac(net.gateway), my_mac, me, remote, 18);
    let inner = udp(endpoint_mac(peer), endpoint_mac(remote), remote, peer, 18);
    let decap = vxlan(LOCAL_MAC, VTEP_MAC, (VTEP, 50000), LOCAL, (VNI, 1), &inner);

    // BPF statistics time the program alone, so single runs are as fair as repeated ones.
    let _stats = aya::sys::enable_stats(aya::sys::Stats::RunTime).context("enabling BPF stats")?;
    for (case, program, frame) in [
        ("encap", PROG_FROM_SANDBOX, &encap),
        ("decap", PROG_FROM_UPLINK, &decap),
    ] {
        let run = |dp: &mut Dataplane| match program {
            PROG_FROM_SANDBOX => dp.test_run(frame, 1),
            _ => dp.test_run_uplink(frame, 1),
        };
        let first = run(&mut dp)?;
        if first.verdict != 7 {
            bail!("{case}: verdict {} instead of a redirect", first.verdict);
        }
        for _ in 0..1_000 {
            run(&mut dp)?;
        }
        let (count0, time0) = dp.run_stats(program)?;
        for _ in 0..runs {
            run(&mut dp)?;
        }
        let (count1, time1) = dp.run_stats(program)?;
        let ns = (time1 - time0).as_nanos() as f64 / (count1 - count0) as f64;
        println!(
            "{}",
            serde_json::json!({ "case": case, "ns_per_packet": (ns * 10.0).round() / 10.0 })
        );
    }
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
