//! Appends one dated section (table, targets, notes, chart link) to bench/RESULTS.md.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::results::{labelled, C2cResults, Metric, Results};
use super::topology::Kind;
use super::{engines, nat, overlay};

/// Targets from the issue, stated next to the numbers.
const SMALL_PACKET_VS_FLOOR: f64 = 0.95;
const SMALL_PACKET_VS_BRIDGE: f64 = 1.8;
const FORWARD_COST_NS: f64 = 60.0;
/// The prog-cost case that is the forward path: unicast from one sandbox to a peer.
const FORWARD_PATH_CASE: &str = "peer";
const CONNECT_P50_MS: f64 = 5.0;

const HEADER: &str = "# Benchmark results\n\n\
Written by `cargo xtask bench` (see README.md); one section per run, newest last.\n\
Client and server are two network namespaces on the same machine; every number is the median over\n\
the rounds, with the three topologies interleaved within each round.\n";

/// The chart files of one run, one per part.
pub struct Charts {
    pub c2c: String,
    pub nat: String,
    pub engines: String,
    pub overlay: String,
}

pub fn append(results: &Results, results_md: &Path, charts: &Charts) -> Result<()> {
    let mut text = match std::fs::read_to_string(results_md) {
        Ok(existing) => existing,
        Err(_) => HEADER.to_string(),
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text.push('\n');
    text.push_str(&section(results, charts));
    std::fs::write(results_md, text)
        .with_context(|| format!("cannot write {}", results_md.display()))
}

pub fn section(results: &Results, charts: &Charts) -> String {
    let mut md = String::new();
    let m = &results.machine;
    let _ = writeln!(md, "## {} {} UTC\n", results.date, results.time);
    let _ = writeln!(
        md,
        "Machine: kernel {}, {}, {} cores, load average {} at start. Rounds: {} × {} s per measurement.\n",
        m.kernel, m.cpu, m.cores, m.load, results.rounds, results.seconds
    );
    match &results.c2c {
        Some(c2c) => md.push_str(&c2c_part(c2c, &charts.c2c)),
        None => md.push_str("Container-to-container part: not run (`--only` another part).\n"),
    }
    match &results.nat {
        Some(nat) => {
            md.push('\n');
            md.push_str(&nat::report::section(nat, &charts.nat));
        }
        None => md.push_str("\nNAT part: not run (`--only` another part).\n"),
    }
    match &results.engines {
        Some(engines) => {
            md.push('\n');
            md.push_str(&engines::report::section(engines, &charts.engines));
        }
        None => md.push_str("\nContainer-engine part: not run (`--only` another part).\n"),
    }
    match &results.overlay {
        Some(overlay) => {
            md.push('\n');
            md.push_str(&overlay::report::section(overlay, &charts.overlay));
        }
        None => md.push_str("\nOverlay part: not run (`--only` another part).\n"),
    }
    md
}

fn c2c_part(results: &C2cResults, chart_file: &str) -> String {
    let mut md = String::new();

    let _ = writeln!(
        md,
        "| metric | veth floor | bridge+iptables | netd | netd/floor | netd/bridge | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|");
    for metric in Metric::ALL {
        let value = |kind| results.median(kind, metric);
        let cell =
            |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.*}", metric.decimals()));
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "—".to_string(),
        };
        let (floor, bridge, netd) = (value(Kind::Floor), value(Kind::Bridge), value(Kind::Netd));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            metric.title(),
            cell(floor),
            cell(bridge),
            cell(netd),
            ratio(netd, floor),
            ratio(netd, bridge),
            target(metric, floor, bridge, netd)
        );
    }

    let _ = writeln!(md);
    match &results.connect {
        Ok(latency) => {
            let verdict = verdict(latency.p50_ms <= CONNECT_P50_MS);
            let _ = writeln!(
                md,
                "`netd network connect` (wall time of the CLI call, {} connect+disconnect cycles): \
                 p50 {:.2} ms, p99 {:.2} ms. Target p50 ≤ {CONNECT_P50_MS} ms: {verdict}.",
                latency.count, latency.p50_ms, latency.p99_ms
            );
        }
        Err(error) => {
            let _ = writeln!(
                md,
                "`netd network connect` latency: not measured ({error})."
            );
        }
    }

    let _ = writeln!(md);
    match &results.prog_cost {
        Ok(cases) => {
            let _ = writeln!(
                md,
                "BPF_PROG_TEST_RUN cost of `from_sandbox` per case (target: the forward path, \
                 case `{FORWARD_PATH_CASE}`, ≤ {FORWARD_COST_NS} ns/packet):\n"
            );
            let _ = writeln!(md, "| case | ns/packet | target |");
            let _ = writeln!(md, "|---|---:|---|");
            for case in cases {
                let target = if case.case == FORWARD_PATH_CASE {
                    format!(
                        "≤ {FORWARD_COST_NS}: {}",
                        verdict(case.ns_per_packet <= FORWARD_COST_NS)
                    )
                } else {
                    "—".to_string()
                };
                let _ = writeln!(
                    md,
                    "| {} | {:.1} | {target} |",
                    case.case, case.ns_per_packet
                );
            }
        }
        Err(error) => {
            let _ = writeln!(md, "BPF_PROG_TEST_RUN cost: not measured ({error}).");
        }
    }

    let notes = labelled(&results.topologies, |run| &run.notes);
    let errors = labelled(&results.topologies, |run| &run.errors);
    if !notes.is_empty() || !errors.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for line in notes.iter().chain(errors.iter().map(|e| e as &String)) {
            let _ = writeln!(md, "- {}", one_line(line));
        }
    }
    let _ = writeln!(md, "\n![medians per topology]({chart_file})");
    md
}

/// The targets concern the netd small-packet rate; other rows say "—".
fn target(metric: Metric, floor: Option<f64>, bridge: Option<f64>, netd: Option<f64>) -> String {
    let Metric::UdpKpps = metric else {
        return "—".to_string();
    };
    let goal = format!("≥ {SMALL_PACKET_VS_FLOOR}× floor, ≥ {SMALL_PACKET_VS_BRIDGE}× bridge");
    match (floor, bridge, netd) {
        (Some(floor), Some(bridge), Some(netd)) => {
            let met =
                netd >= SMALL_PACKET_VS_FLOOR * floor && netd >= SMALL_PACKET_VS_BRIDGE * bridge;
            format!("{goal}: {}", verdict(met))
        }
        _ => format!("{goal}: not measured"),
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**not met**"
    }
}

/// Error chains may span lines; a Markdown list item must not.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A table cell: the value with `decimals`, or a dash if it was not measured.
pub fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or("—".to_string(), |v| format!("{v:.decimals$}"))
}

/// The "Notes:" list of the NAT and engines parts, if they have notes or errors.
pub fn notes_list(md: &mut String, notes: &[String], errors: &[String]) {
    if notes.is_empty() && errors.is_empty() {
        return;
    }
    let _ = writeln!(md, "Notes:\n");
    for line in notes.iter().chain(errors) {
        let _ = writeln!(md, "- {}", one_line(line));
    }
    let _ = writeln!(md);
}
