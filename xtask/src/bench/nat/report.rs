//! The NAT part of a RESULTS.md section: one table per comparison, ratios and the targets.

use std::fmt::Write as _;

use super::results::{LocalPath, NatResults, Side};
use crate::bench::report::{cell, notes_list, verdict};

/// Targets from the issue.
const GROWTH_1_TO_10K: f64 = 1.1;
const VS_IPTABLES_AT_10K: f64 = 0.3;
const PUBLISH_10K_S: f64 = 0.1;
const LOCAL_VS_PROXY: f64 = 1.2;
const LOCAL_VS_DIRECT: f64 = 0.95;
const EGRESS_VS_IPTABLES: f64 = 1.3;

pub fn section(nat: &NatResults, chart_file: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### NAT: published ports and masquerade\n");
    let _ = writeln!(
        md,
        "Topology per side: an \"outside\" namespace, a veth pair (the host's uplink), a \"host\" \
         namespace, a sandbox. bridge+iptables: a Linux bridge, ip_forward and Docker 20.10's \
         rules, installed by one `iptables-restore`. netd: the daemon in the host namespace with \
         `--uplink` on that veth and its socket hooks on the bench's own cgroup. The sides are \
         interleaved within each round; every number is the median over the rounds.\n"
    );

    scale_table(&mut md, nat);
    local_table(&mut md, nat);
    egress_table(&mut md, nat);

    notes_list(&mut md, &nat.notes, &nat.errors());
    let _ = writeln!(md, "![NAT medians]({chart_file})");
    md
}

fn scale_table(md: &mut String, nat: &NatResults) {
    let _ = writeln!(
        md,
        "New connections from the outside namespace to the last of N published ports (time of \
         connect(): SYN out to SYN-ACK back through the DNAT; {} per N and round after {} \
         untimed), and the time to publish the N ports (one `iptables-restore` of the whole rule \
         set; one `netd network connect -p …` call; wall time of the command, its process start included). Up to 50,000 ports on one \
         address; 100,000 are two host addresses × 50,000.\n",
        nat.connects, nat.warmup
    );
    let _ = writeln!(
        md,
        "| N ports | iptables p50 (µs) | iptables p99 (µs) | netd p50 (µs) | netd p99 (µs) | netd/iptables p50 | iptables-restore (s) | netd publish (s) |"
    );
    let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in nat.port_counts() {
        let (ip50, np50) = (
            nat.connect_p50_us(Side::Iptables, n),
            nat.connect_p50_us(Side::Netd, n),
        );
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(n),
            cell(ip50, 1),
            cell(nat.connect_p99_us(Side::Iptables, n), 1),
            cell(np50, 1),
            cell(nat.connect_p99_us(Side::Netd, n), 1),
            ratio(np50, ip50),
            cell(nat.publish_s(Side::Iptables, n), 3),
            cell(nat.publish_s(Side::Netd, n), 3),
        );
    }
    let _ = writeln!(md, "\nTargets:\n");
    let netd_1 = nat.connect_p50_us(Side::Netd, 1);
    let netd_10k = nat.connect_p50_us(Side::Netd, 10_000);
    let ipt_10k = nat.connect_p50_us(Side::Iptables, 10_000);
    target_line(
        md,
        &format!("netd p50 at 10,000 ports ≤ {GROWTH_1_TO_10K}× its p50 at 1 port"),
        quotient(netd_10k, netd_1),
        |r| r <= GROWTH_1_TO_10K,
    );
    target_line(
        md,
        &format!("netd p50 at 10,000 ports ≤ {VS_IPTABLES_AT_10K}× iptables"),
        quotient(netd_10k, ipt_10k),
        |r| r <= VS_IPTABLES_AT_10K,
    );
    let publish = nat.publish_s(Side::Netd, 10_000);
    let _ = writeln!(
        md,
        "- netd publishes 10,000 ports in ≤ {PUBLISH_10K_S} s with no process per port: {}",
        match publish {
            Some(s) => format!("{s:.3} s: {}", verdict(s <= PUBLISH_10K_S)),
            None => "not measured".to_string(),
        }
    );
    let _ = writeln!(
        md,
        "\nReference figures from the issue (not measured here): iptables p50 26 / 61 / 230 µs at \
         1 / 1,000 / 10,000 rules; iptables-restore 0.17 s for 10,000 rules; Docker 2.0 s and \
         200 docker-proxy processes (643 MB RSS) for 100 ports.\n"
    );
}

fn local_table(md: &mut String, nat: &NatResults) {
    let _ = writeln!(
        md,
        "Localhost published ports: iperf3 TCP and sockperf ping-pong TCP (64 B) from the host \
         namespace to a sandbox, through 127.0.0.1:port (docker-proxy on the bridge host; netd's \
         connect4 hook) or straight to the sandbox's address (the floor of each host).\n"
    );
    let _ = writeln!(md, "| path | TCP (Gbit/s) | RTT p50 (µs) | RTT p99 (µs) |");
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for path in LocalPath::ALL {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            path.label(),
            cell(nat.local_gbps(path), 2),
            cell(nat.local_rtt_p50_us(path), 1),
            cell(nat.local_rtt_p99_us(path), 1),
        );
    }
    let netd = nat.local_gbps(LocalPath::NetdHook);
    let _ = writeln!(md, "\nTargets:\n");
    target_line(
        md,
        &format!("netd throughput ≥ {LOCAL_VS_PROXY}× docker-proxy"),
        quotient(netd, nat.local_gbps(LocalPath::DockerProxy)),
        |r| r >= LOCAL_VS_PROXY,
    );
    target_line(
        md,
        &format!("netd throughput ≥ {LOCAL_VS_DIRECT}× direct (netd host)"),
        quotient(netd, nat.local_gbps(LocalPath::DirectNetd)),
        |r| r >= LOCAL_VS_DIRECT,
    );
    let _ = writeln!(
        md,
        "- (for information) RTT p50 netd/docker-proxy: {}\n",
        ratio(
            nat.local_rtt_p50_us(LocalPath::NetdHook),
            nat.local_rtt_p50_us(LocalPath::DockerProxy)
        )
    );
}

fn egress_table(md: &mut String, nat: &NatResults) {
    let _ = writeln!(
        md,
        "Egress masquerade: iperf3 UDP, 64-byte payloads, unthrottled, from the sandbox to the \
         outside namespace (receiver side).\n"
    );
    let (ipt, netd) = (nat.egress_kpps(Side::Iptables), nat.egress_kpps(Side::Netd));
    let _ = writeln!(
        md,
        "| metric | bridge+iptables MASQUERADE | netd SNAT | netd/iptables | target |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---|");
    let goal = format!("≥ {EGRESS_VS_IPTABLES}×");
    let target = match quotient(netd, ipt) {
        Some(r) => format!("{goal}: {}", verdict(r >= EGRESS_VS_IPTABLES)),
        None => format!("{goal}: not measured"),
    };
    let _ = writeln!(
        md,
        "| UDP 64 B egress (kpps) | {} | {} | {} | {target} |\n",
        cell(ipt, 0),
        cell(netd, 0),
        ratio(netd, ipt)
    );
}

fn target_line(md: &mut String, goal: &str, value: Option<f64>, met: impl Fn(f64) -> bool) {
    let outcome = match value {
        Some(r) => format!("{r:.2}×: {}", verdict(met(r))),
        None => "not measured".to_string(),
    };
    let _ = writeln!(md, "- {goal}: {outcome}");
}

fn quotient(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Two decimals, or three significant digits for small ratios (0.004×, not 0.00×).
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    quotient(a, b).map_or("—".to_string(), |r| {
        if r >= 0.1 {
            format!("{r:.2}×")
        } else {
            let decimals = (2.0 - r.log10().floor()).clamp(2.0, 6.0) as usize;
            format!("{r:.decimals$}×")
        }
    })
}

pub fn thousands(n: u32) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ratios_keep_digits() {
        assert_eq!(ratio(Some(27.0), Some(7198.0)), "0.00375×");
        assert_eq!(ratio(Some(31.1), Some(539.1)), "0.0577×");
        assert_eq!(ratio(Some(1.0), Some(2.0)), "0.50×");
        assert_eq!(ratio(None, Some(2.0)), "—");
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(thousands(1), "1");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(100_000), "100,000");
    }
}
