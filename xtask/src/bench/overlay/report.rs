//! The overlay part of a RESULTS.md section: medians with their confidence intervals per
//! layout, netd/baseline ratios with theirs, the encap/decap program cost, the targets.

use std::fmt::Write as _;

use super::layout::{OVERLAY_MTU, VNI};
use super::results::{OverlayResults, BASELINE, NETD};
use crate::bench::report::{notes_list, verdict};
use crate::bench::results::{labelled, Metric};
use crate::bench::topology::Kind;

/// Targets from the issue.
pub const UDP_VS_BASELINE: f64 = 1.5;
pub const TCP_VS_BASELINE: f64 = 1.0;
pub const PROGRAM_COST_NS: f64 = 100.0;
/// The prog-cost cases of the overlay's two programs' paths.
pub const COST_CASES: [&str; 2] = ["encap", "decap"];

pub fn section(overlay: &OverlayResults, chart_file: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "### Overlay: two hosts, netd's VXLAN vs. kernel vxlan + bridge\n"
    );
    let _ = writeln!(
        md,
        "Two \"host\" namespaces joined by an underlay veth pair (`ul0`, MTU 1500), one sandbox \
         per host; the client runs in host 1's sandbox, the servers in host 2's, so every packet \
         is encapsulated on one host and decapsulated on the other. vxlan+bridge (Docker's \
         classic overlay driver, built by hand): per host a Linux bridge with the gateway \
         address in an overlay namespace, a kernel vxlan device (VNI {VNI}, UDP 4789, `local` \
         the underlay address, `nolearning proxy`, MTU {OVERLAY_MTU}) created in the host \
         namespace and moved onto the bridge, the peer's MAC as a static fdb entry and a \
         permanent neighbour entry (ARP answered by the device), the sandbox's veth on the \
         bridge, sandbox MTU {OVERLAY_MTU}; the host namespace holds Docker 20.10's default \
         iptables ruleset (docker0 idle, br_netfilter on), whose netfilter hooks the outer \
         VXLAN packets pass. netd overlay: one netd daemon per host (`--uplink ul0 \
         --advertise-addr <underlay address> --cluster-store etcd://…`), one etcd server on \
         host 1's underlay address, `netd network create -d overlay` on host 1 and `netd \
         network connect` of one sandbox per host; encap and decap are netd's eBPF programs, \
         no vxlan device, no iptables rules. veth floor: one veth pair between two namespaces, \
         for reference. iperf3 and sockperf as in the c2c part; the layouts are interleaved \
         within each round; cells are medians over the rounds with their 95% bootstrap \
         confidence intervals in brackets.\n"
    );
    metrics_table(&mut md, overlay);
    cost_table(&mut md, overlay);
    let notes = labelled(&overlay.topologies, |run| &run.notes);
    notes_list(&mut md, &notes, &overlay.errors());
    let _ = writeln!(md, "![overlay medians]({chart_file})");
    md
}

fn metrics_table(md: &mut String, overlay: &OverlayResults) {
    let _ = writeln!(
        md,
        "| metric | {} | {} | {} | netd/{} | target |",
        Kind::Floor.label(),
        BASELINE.label(),
        NETD.label(),
        BASELINE.label()
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    for metric in Metric::ALL {
        let cell = |kind: Kind| {
            let decimals = metric.decimals();
            match (overlay.median(kind, metric), overlay.interval(kind, metric)) {
                (Some(m), Some((low, high))) => {
                    format!("{m:.decimals$} [{low:.decimals$}–{high:.decimals$}]")
                }
                (Some(m), None) => format!("{m:.decimals$}"),
                _ => "—".to_string(),
            }
        };
        let ratio = match (overlay.ratio(metric), overlay.ratio_interval(metric)) {
            (Some(r), Some((low, high))) => format!("{r:.2}× [{low:.2}–{high:.2}]"),
            (Some(r), None) => format!("{r:.2}×"),
            _ => "—".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {ratio} | {} |",
            metric.title(),
            cell(Kind::Floor),
            cell(BASELINE),
            cell(NETD),
            target(overlay, metric)
        );
    }
    let _ = writeln!(md);
}

/// The throughput targets, judged on the ratio of the medians; the interval says
/// whether the verdict could flip with the noise.
fn target(overlay: &OverlayResults, metric: Metric) -> String {
    let goal = match metric {
        Metric::UdpKpps => UDP_VS_BASELINE,
        Metric::TcpGbps => TCP_VS_BASELINE,
        Metric::RttP50Us | Metric::RttP99Us => return "—".to_string(),
    };
    let label = format!("≥ {goal}×");
    match (overlay.ratio(metric), overlay.ratio_interval(metric)) {
        (Some(r), Some((low, high))) if (low < goal) != (high < goal) => {
            format!(
                "{label}: {} (within noise: the CI spans it)",
                verdict(r >= goal)
            )
        }
        (Some(r), _) => format!("{label}: {}", verdict(r >= goal)),
        (None, _) => format!("{label}: not measured"),
    }
}

fn cost_table(md: &mut String, overlay: &OverlayResults) {
    match &overlay.prog_cost {
        Ok(cases) => {
            let _ = writeln!(
                md,
                "BPF_PROG_TEST_RUN cost of netd's overlay paths (prog-cost: `encap` = \
                 `from_sandbox` on a frame to an endpoint on the other host, `decap` = \
                 `from_uplink` on a VXLAN frame to a local one; encap grows and decap shrinks \
                 the frame, so each call runs the program once and the time is the kernel's BPF \
                 run-time statistics of the program alone, helpers included, averaged over the \
                 calls):\n"
            );
            let _ = writeln!(md, "| case | ns/packet | target |");
            let _ = writeln!(md, "|---|---:|---|");
            for case in cases {
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | ≤ {PROGRAM_COST_NS}: {} |",
                    case.case,
                    case.ns_per_packet,
                    verdict(case.ns_per_packet <= PROGRAM_COST_NS)
                );
            }
            let _ = writeln!(md);
        }
        Err(error) => {
            let _ = writeln!(
                md,
                "BPF_PROG_TEST_RUN cost of encap/decap (target ≤ {PROGRAM_COST_NS} ns/packet): \
                 not measured ({}).\n",
                crate::bench::report::one_line(error)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::prog_cost::Case;
    use crate::bench::results::TopologyRun;

    fn run(kind: Kind, udp_kpps: &[f64], tcp_gbps: &[f64]) -> TopologyRun {
        let mut run = TopologyRun::new(kind);
        run.udp_pps = udp_kpps.iter().map(|k| k * 1e3).collect();
        run.tcp_bits_per_second = tcp_gbps.iter().map(|g| g * 1e9).collect();
        run
    }

    #[test]
    fn reports_ratios_intervals_and_targets() {
        let mut netd = run(NETD, &[180.0, 175.0, 185.0], &[14.0, 15.0, 16.0]);
        netd.errors.push("round 2 RTT:\nfailed".to_string());
        let overlay = OverlayResults {
            topologies: vec![
                run(Kind::Floor, &[240.0], &[]),
                run(BASELINE, &[110.0, 100.0, 120.0], &[14.8, 14.9, 15.0]),
                netd,
            ],
            prog_cost: Ok(vec![
                Case {
                    case: "encap".to_string(),
                    ns_per_packet: 80.0,
                },
                Case {
                    case: "decap".to_string(),
                    ns_per_packet: 120.0,
                },
            ]),
        };
        let md = section(&overlay, "chart.svg");
        assert!(md.contains(
            "| UDP 64 B rate (kpps, receiver) | 240 | 110 [100–120] | 180 [175–185] | 1.64×"
        ));
        assert!(md.contains("≥ 1.5×: met"));
        assert!(md.contains("≥ 1×: met (within noise: the CI spans it)"));
        assert!(md.contains("| encap | 80.0 | ≤ 100: met |"));
        assert!(md.contains("| decap | 120.0 | ≤ 100: **not met** |"));
        assert!(md.contains("- netd overlay: round 2 RTT: failed"));
        assert!(md.contains("![overlay medians](chart.svg)"));
    }

    #[test]
    fn says_why_the_cost_is_missing() {
        let overlay = OverlayResults {
            topologies: Vec::new(),
            prog_cost: Err("prog-cost has no case `encap`".to_string()),
        };
        let md = section(&overlay, "chart.svg");
        assert!(md.contains("not measured (prog-cost has no case `encap`)"));
        assert!(md.contains("≥ 1.5×: not measured"));
    }
}
