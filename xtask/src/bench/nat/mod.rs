//! The NAT benchmarks of issue 4, each comparison measured side by side in one run:
//! 1. new-connection latency from outside to the last of N published ports (netd vs. iptables
//!    DNAT rules in Docker's layout), 2. the time to publish N ports, 3. localhost published-port
//!    throughput and RTT (netd's socket hook vs. docker-proxy vs. the sandbox's own address),
//! 4. egress masquerade of small UDP packets (netd SNAT vs. iptables MASQUERADE).
//!
//! Two topologies, "outside -- host -- sandbox", one per side, set up once; the rounds
//! interleave the sides so drift in the machine's load hits both alike. A part that cannot be
//! set up or measured is recorded with its reason and the other parts still run.

pub mod cgroup;
pub mod chart;
mod iptables;
mod layout;
mod netd_edge;
mod probe;
pub mod report;
mod results;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use super::measure::{self, Servers, Target, IPERF_PORT, SOCKPERF_PORT};
use super::stats::percentile;
use crate::interrupt;
use iptables::IptablesEdge;
use layout::{LOCAL_IPERF_PORT, LOCAL_SOCKPERF_PORT, OUTSIDE_IP};
use netd_edge::NetdEdge;
use probe::ProbeServer;
pub use results::NatResults;
use results::{LocalPath, Side};

/// Untimed connections before each timed series: the first ones fill caches and conntrack.
const WARMUP_CONNECTS: u32 = 20;

pub struct Settings<'a> {
    pub prefix: &'a str,
    pub work_dir: &'a Path,
    pub netd_bin: &'a Result<PathBuf>,
    pub rounds: u32,
    pub seconds: u32,
    /// The N of "N published ports", ascending.
    pub port_counts: &'a [u32],
    /// Timed connections per N and round.
    pub connects: u32,
}

/// A topology with the servers the measurements need. Field order matters: the servers stop
/// before the edge (and with it the namespaces they run in) goes.
struct Bed<E> {
    /// Listens on the container port(s) the scale runs connect to.
    probe: Result<ProbeServer, String>,
    /// iperf3/sockperf in the sandbox, for the localhost runs.
    local_servers: Result<Servers, String>,
    /// iperf3 in the outside namespace, for the egress runs.
    egress_servers: Result<Servers, String>,
    edge: E,
}

pub fn run(settings: &Settings) -> Result<NatResults> {
    let mut results = NatResults::new(settings.port_counts, settings.connects, WARMUP_CONNECTS);
    let log_dir = settings.work_dir;

    println!("\n== NAT: setting up bridge+iptables (outside -- host -- sandbox)");
    let iptables = IptablesEdge::setup(settings.prefix, settings.work_dir).map(|mut edge| {
        let local = edge
            .start_proxies(log_dir)
            .and_then(|()| Servers::start_in(&edge.server, iptables::SERVER_IP, log_dir));
        Bed {
            probe: text(ProbeServer::start(
                edge.server.name(),
                &[iptables::CONTAINER_PORT],
            )),
            local_servers: text(local),
            egress_servers: text(Servers::start_in(&edge.outside, OUTSIDE_IP, log_dir)),
            edge,
        }
    });
    interrupt::check()?;

    println!("\n== NAT: setting up netd (outside -- host with --uplink -- sandbox)");
    let netd = settings
        .netd_bin
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|bin| NetdEdge::setup(settings.prefix, bin, settings.work_dir))
        .map(|edge| {
            // netd publishes host port P onto container port P: listen on each N's last port.
            // 50,000 and 100,000 ports end on the same port number.
            let mut container_ports: Vec<u16> = settings
                .port_counts
                .iter()
                .filter_map(|&n| layout::blocks(n).ok())
                .map(|blocks| layout::last_port(&blocks).1)
                .collect();
            container_ports.sort_unstable();
            container_ports.dedup();
            let local = edge
                .local_server_ip()
                .and_then(|ip| Servers::start_in(edge.local_server(), ip, log_dir));
            Bed {
                probe: text(ProbeServer::start(
                    edge.scale_server().name(),
                    &container_ports,
                )),
                local_servers: text(local),
                egress_servers: text(Servers::start_in(&edge.outside, OUTSIDE_IP, log_dir)),
                edge,
            }
        });
    interrupt::check()?;

    record_setup(&mut results, Side::Iptables, iptables.as_ref().err());
    record_setup(&mut results, Side::Netd, netd.as_ref().err());
    let mut iptables = iptables.ok();
    let mut netd = netd.ok();
    if let Some(bed) = &iptables {
        results.notes.push(format!(
            "bridge+iptables: {}; one DNAT rule per published port in the nat DOCKER chain, \
             all onto one container port",
            bed.edge.version()
        ));
    }

    for round in 1..=settings.rounds {
        println!("\n== NAT round {round}/{}", settings.rounds);
        for &ports in settings.port_counts {
            if let Some(bed) = &iptables {
                let outside = bed.edge.outside.name();
                scale_round(
                    &mut results,
                    (Side::Iptables, ports, round),
                    settings.connects,
                    (&bed.probe, outside),
                    |blocks| bed.edge.publish(blocks),
                );
            }
            if let Some(Bed { edge, probe, .. }) = &mut netd {
                let outside = edge.outside.name().to_string();
                scale_round(
                    &mut results,
                    (Side::Netd, ports, round),
                    settings.connects,
                    (probe, &outside),
                    |blocks| edge.publish(blocks),
                );
            }
            interrupt::check()?;
        }
        local_round(
            &mut results,
            round,
            settings.seconds,
            iptables.as_ref(),
            netd.as_ref(),
        )?;
        egress_round(
            &mut results,
            round,
            settings.seconds,
            iptables.as_ref(),
            netd.as_ref(),
        )?;
    }
    footprint_notes(
        &mut results,
        iptables.as_ref(),
        netd.as_ref(),
        settings.port_counts,
    );
    println!("\n== NAT: tearing down");
    iptables.take();
    netd.take();
    Ok(results)
}

/// Errors as one-line-able strings: they go into the report, and a topology must not fail as
/// a whole because one of its servers did.
fn text<T>(result: Result<T>) -> Result<T, String> {
    result.map_err(|error| format!("{error:#}"))
}

/// A side whose topology could not be set up: every one of its parts says why.
fn record_setup(results: &mut NatResults, side: Side, error: Option<&anyhow::Error>) {
    let Some(error) = error else { return };
    let reason = format!("not measured: {error:#}");
    println!("{}: {reason}", side.label());
    for run in results.scale.iter_mut().filter(|r| r.side == side) {
        run.errors.push(reason.clone());
    }
    let paths: &[LocalPath] = match side {
        Side::Iptables => &[LocalPath::DockerProxy, LocalPath::DirectBridge],
        Side::Netd => &[LocalPath::NetdHook, LocalPath::DirectNetd],
    };
    for &path in paths {
        results.local_mut(path).errors.push(reason.clone());
    }
    results.egress_mut(side).errors.push(reason);
}

/// Publishes N ports (timed), then times new connections from outside to the last one.
fn scale_round(
    results: &mut NatResults,
    (side, ports, round): (Side, u32, u32),
    connects: u32,
    (probe, outside): (&Result<ProbeServer, String>, &str),
    publish: impl FnOnce(&[layout::Block]) -> Result<Duration>,
) {
    let run = results.scale_mut(side, ports);
    let mut fail = |what: &str, error: String| {
        println!(
            "round {round} {} N={ports}: {what} failed: {error}",
            side.label()
        );
        run.errors.push(format!("round {round} {what}: {error}"));
    };
    if let Err(error) = probe {
        return fail("listener", error.clone());
    }
    let blocks = match layout::blocks(ports) {
        Ok(blocks) => blocks,
        Err(error) => return fail("layout", format!("{error:#}")),
    };
    let published = match publish(&blocks) {
        Ok(elapsed) => elapsed.as_secs_f64(),
        Err(error) => return fail("publish", format!("{error:#}")),
    };
    let (ip, port) = layout::last_port(&blocks);
    let samples = match probe::connect_latency(
        outside,
        SocketAddrV4::new(ip, port),
        WARMUP_CONNECTS,
        connects,
    ) {
        Ok(samples) => samples,
        Err(error) => return fail("connect", format!("{error:#}")),
    };
    let micros: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e6).collect();
    let (p50, p99) = (percentile(&micros, 50.0), percentile(&micros, 99.0));
    let (Some(p50), Some(p99)) = (p50, p99) else {
        return fail("connect", "no samples".to_string());
    };
    println!(
        "round {round} {} N={ports}: publish {:.3} s; connect to {ip}:{port} p50 {p50:.1} µs, p99 {p99:.1} µs",
        side.label(),
        published
    );
    let run = results.scale_mut(side, ports);
    run.publish_s.push(published);
    run.connect_p50_us.push(p50);
    run.connect_p99_us.push(p99);
}

/// Item 3: a client in the host namespace, TCP throughput and RTT over each path.
fn local_round(
    results: &mut NatResults,
    round: u32,
    seconds: u32,
    iptables: Option<&Bed<IptablesEdge>>,
    netd: Option<&Bed<NetdEdge>>,
) -> Result<()> {
    let localhost = Ipv4Addr::LOCALHOST;
    for path in LocalPath::ALL {
        interrupt::check()?;
        let target: Result<Target, String> = match path {
            LocalPath::DockerProxy | LocalPath::DirectBridge => {
                let Some(bed) = iptables else { continue };
                bed.local_servers.as_ref().map_err(Clone::clone).map(|_| {
                    let (ip, iperf_port, sockperf_port) = match path {
                        LocalPath::DockerProxy => {
                            (localhost, LOCAL_IPERF_PORT, LOCAL_SOCKPERF_PORT)
                        }
                        _ => (iptables::SERVER_IP, IPERF_PORT, SOCKPERF_PORT),
                    };
                    Target {
                        client: &bed.edge.host,
                        ip,
                        iperf_port,
                        sockperf_port,
                        cgroup: None,
                    }
                })
            }
            LocalPath::NetdHook | LocalPath::DirectNetd => {
                let Some(bed) = netd else { continue };
                bed.local_servers
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|_| text(bed.edge.local_server_ip()))
                    .map(|server_ip| match path {
                        // In the bench's cgroup, where the daemon attached its socket hooks.
                        LocalPath::NetdHook => Target {
                            client: &bed.edge.host,
                            ip: localhost,
                            iperf_port: LOCAL_IPERF_PORT,
                            sockperf_port: LOCAL_SOCKPERF_PORT,
                            cgroup: Some(bed.edge.cgroup()),
                        },
                        _ => Target {
                            client: &bed.edge.host,
                            ip: server_ip,
                            iperf_port: IPERF_PORT,
                            sockperf_port: SOCKPERF_PORT,
                            cgroup: None,
                        },
                    })
            }
        };
        let run = results.local_mut(path);
        let target = match target {
            Ok(target) => target,
            Err(error) => {
                run.errors.push(format!("round {round}: {error}"));
                continue;
            }
        };
        let mut line = format!("round {round} localhost {}:", path.label());
        match measure::tcp_throughput(&target, seconds) {
            Ok(bps) => {
                line.push_str(&format!(" TCP {:.2} Gbit/s;", bps / 1e9));
                run.tcp_bits_per_second.push(bps);
            }
            Err(error) => {
                line.push_str(" TCP failed;");
                run.errors.push(format!("round {round} TCP: {error:#}"));
            }
        }
        interrupt::check()?;
        match measure::tcp_round_trip(&target, seconds) {
            Ok((p50, p99)) => {
                line.push_str(&format!(" RTT p50 {p50:.1} µs, p99 {p99:.1} µs"));
                run.rtt_p50_us.push(p50);
                run.rtt_p99_us.push(p99);
            }
            Err(error) => {
                line.push_str(" RTT failed");
                run.errors.push(format!("round {round} RTT: {error:#}"));
            }
        }
        println!("{line}");
    }
    Ok(())
}

/// Item 4: 64-byte UDP from the sandbox to the outside namespace, masqueraded by the host.
fn egress_round(
    results: &mut NatResults,
    round: u32,
    seconds: u32,
    iptables: Option<&Bed<IptablesEdge>>,
    netd: Option<&Bed<NetdEdge>>,
) -> Result<()> {
    for side in Side::ALL {
        interrupt::check()?;
        let (client, servers) = match (side, iptables, netd) {
            (Side::Iptables, Some(bed), _) => (&bed.edge.server, &bed.egress_servers),
            (Side::Netd, _, Some(bed)) => (bed.edge.local_server(), &bed.egress_servers),
            _ => continue,
        };
        let run = results.egress_mut(side);
        if let Err(error) = servers {
            run.errors.push(format!("round {round}: {error}"));
            continue;
        }
        let target = Target {
            client,
            ip: OUTSIDE_IP,
            iperf_port: IPERF_PORT,
            sockperf_port: SOCKPERF_PORT,
            cgroup: None,
        };
        match measure::udp_small_packet_rate(&target, seconds) {
            Ok(pps) => {
                println!(
                    "round {round} egress {}: UDP {:.0} kpps",
                    side.label(),
                    pps / 1e3
                );
                run.udp_pps.push(pps);
            }
            Err(error) => {
                println!("round {round} egress {}: UDP failed", side.label());
                run.errors.push(format!("round {round} UDP: {error:#}"));
            }
        }
    }
    Ok(())
}

/// Memory and processes behind the published ports, read at the end (the largest N is then
/// published on netd's side).
fn footprint_notes(
    results: &mut NatResults,
    iptables: Option<&Bed<IptablesEdge>>,
    netd: Option<&Bed<NetdEdge>>,
    port_counts: &[u32],
) {
    if let Some(bed) = iptables {
        let rss = bed.edge.proxy_rss_mib();
        if !rss.is_empty() {
            let total: f64 = rss.iter().sum();
            results.notes.push(format!(
                "docker-proxy: {} processes for the {} localhost ports, {total:.1} MiB RSS in all \
                 (Docker starts one per published port and address family)",
                rss.len(),
                rss.len()
            ));
        }
    }
    let largest = port_counts.last().copied().unwrap_or(0);
    let published = results
        .scale(Side::Netd, largest)
        .is_some_and(|run| !run.publish_s.is_empty());
    if let (Some(bed), true) = (netd, published) {
        if let Some((rss, children)) = bed.edge.daemon_footprint() {
            results.notes.push(format!(
                "netd: daemon RSS {rss:.1} MiB with {} ports published, \
                 {children} child processes (no process per port)",
                report::thousands(largest)
            ));
        }
    }
}
