//! The engines part of a RESULTS.md section: start latencies side by side, the footprint of 100
//! published ports, and the targets.

use std::fmt::Write as _;

use super::results::{median_count, Case, EnginesResults, Side};
use crate::bench::report::{cell, notes_list, verdict};
use crate::bench::stats::median;

/// Target from the issue: what netd may add to `docker run` (median), in ms.
pub const DOCKER_RUN_ADDED_MS: f64 = 10.0;
/// "No memory per published port": netd's daemon may grow at most this much for 100 ports.
pub const PORTS_RSS_GROWTH_MIB: f64 = 1.0;

pub fn section(engines: &EnginesResults, chart_file: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### Container engines: docker run and podman run\n");
    let _ = writeln!(
        md,
        "One \"host\" namespace runs a private dockerd (vfs storage, its own data root, exec root \
         and socket), podman (CNI backend, its own storage and configs) and one netd daemon that \
         serves both: Docker's plugin API and the netd CNI plugin, with `--uplink` on a veth to \
         an \"outside\" namespace. Every container runs `sleep` from a busybox-static image. A \
         sample is the wall time of one `docker run -d` / `podman run -d` call until it returns \
         with the container running; {} containers per side and round, the sides alternating \
         container by container; p50 and p90 are over all samples of the run.\n",
        engines.containers
    );
    start_table(&mut md, engines);
    ports_table(&mut md, engines);

    notes_list(&mut md, &engines.notes, &engines.all_errors());
    let _ = writeln!(md, "![engine start latency]({chart_file})");
    md
}

fn start_table(md: &mut String, engines: &EnginesResults) {
    let _ = writeln!(
        md,
        "| case | samples per side | baseline p50 (ms) | baseline p90 (ms) | netd p50 (ms) | netd p90 (ms) | netd/baseline p50 | netd − baseline (ms) | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for case in Case::ALL {
        let (base, netd) = (
            engines.p50_ms(case, Side::Baseline),
            engines.p50_ms(case, Side::Netd),
        );
        let samples = Side::ALL
            .iter()
            .map(|&side| engines.run(case, side).samples_ms.len().to_string())
            .collect::<Vec<_>>()
            .join(" / ");
        // Back-to-back pairs where there are enough (their differences cancel the machine's
        // drift); else the difference of the pooled medians.
        let paired = engines.paired_difference(case);
        let (added, added_cell) = match (&paired, base, netd) {
            (Some(d), _, _) => (
                Some(d.median_ms),
                format!(
                    "{:+.0} ({} pairs; 95% CI {:+.0} … {:+.0})",
                    d.median_ms, d.pairs, d.low_ms, d.high_ms
                ),
            ),
            (None, Some(base), Some(netd)) => {
                (Some(netd - base), format!("{:+.0} (p50s)", netd - base))
            }
            _ => (None, "—".to_string()),
        };
        let target = match case {
            Case::DockerRun => {
                let goal = format!("netd adds ≤ {DOCKER_RUN_ADDED_MS} ms");
                match added {
                    Some(added) if added <= DOCKER_RUN_ADDED_MS => format!("{goal}: met"),
                    Some(_)
                        if paired
                            .as_ref()
                            .is_some_and(|d| d.low_ms <= DOCKER_RUN_ADDED_MS) =>
                    {
                        format!("{goal}: **not met** (within noise: the CI reaches it)")
                    }
                    Some(_) => format!("{goal}: **not met**"),
                    None => format!("{goal}: not measured"),
                }
            }
            Case::DockerRunPorts => "see the footprint below".to_string(),
            Case::PodmanRun => "—".to_string(),
        };
        let _ = writeln!(
            md,
            "| {} | {samples} | {} | {} | {} | {} | {} | {added_cell} | {target} |",
            case.title(),
            cell(base, 0),
            cell(engines.p90_ms(case, Side::Baseline), 0),
            cell(netd, 0),
            cell(engines.p90_ms(case, Side::Netd), 0),
            ratio(netd, base),
        );
    }
    let _ = writeln!(
        md,
        "\nnetd − baseline: from the two back-to-back starts of each container index (the \
         sides take turns to go first), the mean of two medians of their differences, one over \
         the pairs where netd went first and one over the others, so that an advantage of going \
         first or second cancels; with its 95% bootstrap confidence interval. The target is \
         judged on it. Without enough pairs, the difference of the p50s.\n"
    );
    let _ = writeln!(
        md,
        "Baselines: Docker's user-defined bridge network (`docker network create --subnet …`, \
         Docker's bridge driver with its iptables rules); for podman the conflist `podman network \
         create` writes: the reference plugins bridge (ipMasq, host-local IPAM), portmap, firewall \
         and tuning. netd: a network created through \
         Docker (`docker network create -d <netd's plugin> --ipam-driver <netd's plugin>`), and a \
         conflist with the single plugin `netd`.\n"
    );
}

fn ports_table(md: &mut String, engines: &EnginesResults) {
    let ports = engines.ports;
    let _ = writeln!(
        md,
        "{ports} published ports, `docker run -d -p 20000-20099:20000-20099`, one container per \
         side and round; processes and memory read while it runs (median over the rounds):\n"
    );
    let base = engines.footprint(Side::Baseline);
    let netd = engines.footprint(Side::Netd);
    let case = Case::DockerRunPorts;
    let _ = writeln!(md, "| | Docker bridge | netd plugin |");
    let _ = writeln!(md, "|---|---:|---:|");
    let _ = writeln!(
        md,
        "| start (ms, p50) | {} | {} |",
        cell(engines.p50_ms(case, Side::Baseline), 0),
        cell(engines.p50_ms(case, Side::Netd), 0)
    );
    let _ = writeln!(
        md,
        "| docker-proxy processes (children of dockerd) | {} | {} |",
        cell(median_count(&base.proxies), 0),
        cell(median_count(&netd.proxies), 0)
    );
    let _ = writeln!(
        md,
        "| their RSS in all (MiB) | {} | {} |",
        cell(median(&base.proxy_rss_mib), 1),
        cell(median(&netd.proxy_rss_mib), 1)
    );
    let rss_before = median(&netd.netd_rss_before_mib);
    let rss_after = median(&netd.netd_rss_after_mib);
    let _ = writeln!(
        md,
        "| netd daemon RSS before → while running (MiB) | — | {} |",
        match (rss_before, rss_after) {
            (Some(before), Some(after)) => format!("{before:.1} → {after:.1}"),
            _ => "—".to_string(),
        }
    );
    let _ = writeln!(
        md,
        "| netd daemon child processes | — | {} |",
        cell(median_count(&netd.netd_children), 0)
    );
    let growth = growth_mib(engines);
    let processes = netd
        .proxies
        .iter()
        .chain(&netd.netd_children)
        .copied()
        .max();
    let goal = format!(
        "netd: no process and no memory per published port (no docker-proxy, no child of the \
         daemon, daemon RSS growth ≤ {PORTS_RSS_GROWTH_MIB} MiB for {ports} ports)"
    );
    let outcome = match (processes, growth) {
        (Some(processes), Some(growth)) => format!(
            "{processes} processes, {growth:+.2} MiB: {}",
            verdict(processes == 0 && growth <= PORTS_RSS_GROWTH_MIB)
        ),
        _ => "not measured".to_string(),
    };
    let _ = writeln!(md, "\nTargets:\n\n- {goal}: {outcome}");
    let _ = writeln!(
        md,
        "\nReference figures from the issue (not measured here): `docker run` 288 ms per \
         container on Docker's bridge; with 100 published ports Docker took 2.0 s and left 200 \
         docker-proxy processes using 643 MB RSS.\n"
    );
}

/// The largest RSS growth of netd's daemon over a 100-port `docker run` (worst round).
pub fn growth_mib(engines: &EnginesResults) -> Option<f64> {
    let netd = engines.footprint(Side::Netd);
    netd.netd_rss_before_mib
        .iter()
        .zip(&netd.netd_rss_after_mib)
        .map(|(before, after)| after - before)
        .reduce(f64::max)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::results::Pair;
    use super::*;

    #[test]
    fn reports_measured_and_missing_figures() {
        let mut engines = EnginesResults::new(2, 100);
        engines
            .run_mut(Case::DockerRun, Side::Baseline)
            .samples_ms
            .extend([300.0, 320.0]);
        engines
            .run_mut(Case::DockerRun, Side::Netd)
            .samples_ms
            .extend([305.0, 330.0]);
        for (baseline_ms, netd_ms) in [(300.0, 305.0), (320.0, 330.0)] {
            engines.pairs_mut(Case::DockerRun).push(Pair {
                baseline_ms,
                netd_ms,
                netd_first: false,
            });
        }
        let netd = engines.footprint_mut(Side::Netd);
        netd.proxies.push(0);
        netd.netd_children.push(0);
        netd.netd_rss_before_mib.push(30.0);
        netd.netd_rss_after_mib.push(30.25);
        engines
            .run_mut(Case::PodmanRun, Side::Netd)
            .errors
            .push("not measured:\nreason".to_string());
        let md = section(&engines, "chart.svg");
        // Two pairs are too few for an interval: the difference of the p50s.
        assert!(
            md.contains("| 300 | 320 | 305 | 330 | 1.02× | +5 (p50s) | netd adds ≤ 10 ms: met |")
        );
        assert!(md.contains("0 processes, +0.25 MiB: met"));
        assert!(md.contains("podman run -d (netd CNI): not measured: reason"));
        assert!(md.contains("![engine start latency](chart.svg)"));
    }
}
