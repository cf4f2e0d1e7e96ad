//! `cargo xtask bench`: netd c2c against a bare veth pair (the floor) and a Docker-style
//! bridge with iptables, measured side by side in one run; then the NAT benchmarks (published
//! ports and masquerade, see nat/) and the container-engine benchmarks (docker run and podman run
//! with netd's Docker and CNI plugins, see engines/) and the overlay benchmarks (two hosts: netd's
//! VXLAN overlay vs. kernel vxlan + bridge, see overlay/); appends to bench/RESULTS.md.
//! `--only c2c|nat|engines|overlay` runs one part.
//!
//! Each topology is two namespaces (client, server) named `ndb-<pid>-…`; traffic never leaves them.
//! Measurements are interleaved (round 1: floor, bridge, netd; round 2: …) so that drift in the
//! machine's load hits all topologies alike. Every part that fails is reported and the others
//! still run; the exit status is non-zero if anything was not measured.

mod bridge;
mod chart;
mod docker_host;
mod engines;
mod floor;
mod machine;
mod measure;
mod nat;
mod netd;
mod overlay;
mod procfs;
mod prog_cost;
mod report;
mod results;
mod stats;
mod topology;
mod uplink;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _, Result};

use crate::{cmd, install, interrupt, workspace};
use measure::Servers;
use results::{C2cResults, Results, TopologyRun};
use topology::{Kind, Topology};

#[derive(clap::Args)]
pub struct Options {
    /// Rounds; each round measures every topology once per metric.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    /// Duration of each iperf3/sockperf run, in seconds.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    seconds: u32,
    /// connect+disconnect cycles for the `netd network connect` latency.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    connect_cycles: u32,
    /// Leave out netd (c2c topology and NAT side; reported as not measured).
    #[arg(long)]
    skip_netd: bool,
    /// Print the results but do not touch bench/.
    #[arg(long)]
    no_write: bool,
    /// Run only one part: `c2c` (container to container), `nat` (published ports, masquerade),
    /// `engines` (docker run / podman run with netd's Docker and CNI plugins) or `overlay`
    /// (two hosts: netd's overlay vs. kernel vxlan + bridge).
    #[arg(long, value_enum)]
    only: Option<Part>,
    /// The N of "N published ports" for the NAT scale runs (at most 100,000).
    #[arg(long, value_delimiter = ',', default_values_t = [1, 1_000, 10_000, 100_000],
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    nat_ports: Vec<u32>,
    /// Timed new connections per N and round in the NAT scale runs.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=5000))]
    nat_connects: u32,
    /// Containers per side and round for the `docker run` and `podman run` latencies.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    engine_containers: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    C2c,
    Nat,
    Engines,
    Overlay,
}

impl Options {
    fn runs(&self, part: Part) -> bool {
        self.only.is_none_or(|only| only == part)
    }
}

/// A topology with its iperf3/sockperf servers. Field order matters: the servers stop
/// before the namespaces they run in are deleted.
struct Testbed {
    _servers: Servers,
    topology: Box<dyn Topology>,
}

pub fn run(options: &Options) -> Result<()> {
    let started = Instant::now();
    install::run()?;
    let pid = std::process::id();
    let prefix = format!("ndb-{pid}-");
    let work_dir = TempDir::create(std::env::temp_dir().join(format!("ndb-{pid}")))?;
    let metadata = workspace::metadata()?;
    let machine = machine::Machine::describe();
    let (date, time) = machine::utc_now()?;

    println!("\n== building");
    let netd_bin = build_netd(&metadata);

    let c2c = if options.runs(Part::C2c) {
        Some(run_c2c(
            options,
            &prefix,
            &work_dir.0,
            &metadata,
            &netd_bin,
        )?)
    } else {
        None
    };
    let nat = if options.runs(Part::Nat) {
        let mut port_counts = options.nat_ports.clone();
        // Ascending, so the largest N is the one still published at the end (for its footprint).
        port_counts.sort_unstable();
        port_counts.dedup();
        let netd_bin = netd_unless_skipped(&netd_bin, options);
        Some(nat::run(&nat::Settings {
            prefix: &prefix,
            work_dir: &work_dir.0,
            netd_bin: &netd_bin,
            rounds: options.rounds,
            seconds: options.seconds,
            port_counts: &port_counts,
            connects: options.nat_connects,
        })?)
    } else {
        None
    };
    let engines = if options.runs(Part::Engines) {
        let netd_bin = netd_unless_skipped(&netd_bin, options);
        Some(engines::run(&engines::Settings {
            prefix: &prefix,
            work_dir: &work_dir.0,
            netd_bin: &netd_bin,
            rounds: options.rounds,
            containers: options.engine_containers,
        })?)
    } else {
        None
    };

    let overlay = if options.runs(Part::Overlay) {
        let netd_bin = netd_unless_skipped(&netd_bin, options);
        Some(overlay::run(&overlay::Settings {
            work_dir: &work_dir.0,
            netd_bin: &netd_bin,
            prog_cost_bin: &build_prog_cost(&metadata),
            rounds: options.rounds,
            seconds: options.seconds,
        })?)
    } else {
        None
    };

    let results = Results {
        date,
        time,
        machine,
        rounds: options.rounds,
        seconds: options.seconds,
        c2c,
        nat,
        engines,
        overlay,
    };
    write_results(&results, options)?;
    println!("xtask bench finished in {} s", started.elapsed().as_secs());
    if results.has_failures() {
        bail!("some parts were not measured: see the notes above");
    }
    Ok(())
}

/// The container-to-container part: floor, bridge and netd topologies, interleaved rounds.
fn run_c2c(
    options: &Options,
    prefix: &str,
    work_dir: &Path,
    metadata: &workspace::Metadata,
    netd_bin: &Result<PathBuf>,
) -> Result<C2cResults> {
    let prog_cost_bin = build_prog_cost(metadata);

    let mut connect = Err("netd topology not set up".to_string());
    let runs = measure_topologies(
        &Kind::C2C,
        |kind| match kind {
            Kind::Floor => floor::VethFloor::setup(prefix).map(|t| Box::new(t) as _),
            Kind::Bridge => bridge::DockerBridge::setup(prefix, work_dir).map(|t| Box::new(t) as _),
            Kind::Netd if options.skip_netd => Err(anyhow::anyhow!("skipped (--skip-netd)")),
            Kind::Netd => setup_netd(prefix, netd_bin, work_dir, options, &mut connect),
            other => Err(anyhow::anyhow!("{} is not a c2c topology", other.label())),
        },
        work_dir,
        Rounds {
            rounds: options.rounds,
            seconds: options.seconds,
        },
    )?;

    println!("\n== BPF_PROG_TEST_RUN cost");
    let prog_cost = prog_cost_bin
        .and_then(|bin| prog_cost::measure(&bin))
        .map_err(|error| format!("{error:#}"));
    if let Err(error) = &prog_cost {
        println!("not measured: {error}");
    }

    Ok(C2cResults {
        topologies: runs,
        connect,
        prog_cost,
    })
}

/// How often and how long each topology is measured.
#[derive(Clone, Copy)]
struct Rounds {
    rounds: u32,
    /// Duration of each iperf3/sockperf run.
    seconds: u32,
}

/// Sets up the topology of each of `kinds` in turn (`setup`; a failure is recorded on its run
/// and the others go on), measures them in interleaved rounds, collects their notes and tears
/// them down; one run per kind, in the order of `kinds`.
fn measure_topologies(
    kinds: &[Kind],
    mut setup: impl FnMut(Kind) -> Result<Box<dyn Topology>>,
    work_dir: &Path,
    rounds: Rounds,
) -> Result<Vec<TopologyRun>> {
    let mut runs: Vec<TopologyRun> = kinds.iter().map(|&kind| TopologyRun::new(kind)).collect();
    let mut testbeds = Vec::new();
    for run in &mut runs {
        interrupt::check()?;
        println!("\n== setting up: {}", run.kind.label());
        match setup(run.kind).and_then(|topology| start_testbed(topology, work_dir)) {
            Ok(testbed) => testbeds.push(testbed),
            Err(error) => {
                println!("{}: not measured: {error:#}", run.kind.label());
                run.errors.push(format!("not measured: {error:#}"));
            }
        }
    }

    for round in 1..=rounds.rounds {
        for testbed in &testbeds {
            let run = runs
                .iter_mut()
                .find(|run| run.kind == testbed.topology.kind())
                .expect("every testbed has a run");
            measure_round(testbed.topology.as_ref(), run, round, rounds)?;
        }
    }
    for testbed in &testbeds {
        if let Some(run) = runs
            .iter_mut()
            .find(|run| run.kind == testbed.topology.kind())
        {
            run.notes.extend(testbed.topology.notes());
        }
    }
    println!("\n== tearing down the topologies");
    drop(testbeds);
    Ok(runs)
}

/// The netd binary for a part, or why that part's netd side is not measured.
fn netd_unless_skipped(netd_bin: &Result<PathBuf>, options: &Options) -> Result<PathBuf> {
    match netd_bin {
        _ if options.skip_netd => Err(anyhow::anyhow!("skipped (--skip-netd)")),
        Ok(bin) => Ok(bin.clone()),
        Err(error) => Err(anyhow::anyhow!("{error:#}")),
    }
}

/// Builds netd and checks that its daemon exists yet; the error goes into the netd part only.
fn build_netd(metadata: &workspace::Metadata) -> Result<PathBuf> {
    cmd::run(&mut workspace::cargo(["build", "--release", "-p", "netd"]))?;
    let bin = metadata.release_bin("netd");
    if !cmd::succeeds(std::process::Command::new(&bin).args(["daemon", "--help"])) {
        bail!(
            "`{} daemon --help` fails: the netd daemon is not available yet",
            bin.display()
        );
    }
    Ok(bin)
}

fn build_prog_cost(metadata: &workspace::Metadata) -> Result<PathBuf> {
    if !metadata.has_bin("netd-tests", "prog-cost") {
        bail!("the netd-tests crate has no `prog-cost` binary yet");
    }
    cmd::run(&mut workspace::cargo([
        "build",
        "--release",
        "-p",
        "netd-tests",
        "--bin",
        "prog-cost",
    ]))?;
    Ok(metadata.release_bin("prog-cost"))
}

/// Sets up netd c2c and measures connect latency right away, before any traffic runs.
fn setup_netd(
    prefix: &str,
    netd_bin: &Result<PathBuf>,
    work_dir: &Path,
    options: &Options,
    connect: &mut Result<stats::Latency, String>,
) -> Result<Box<dyn Topology>> {
    let netd_bin = netd_bin.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut netd = netd::NetdC2c::setup(prefix, netd_bin, work_dir)?;
    println!(
        "\n== `netd network connect` latency ({} cycles)",
        options.connect_cycles
    );
    *connect = netd
        .connect_latency(prefix, options.connect_cycles)
        .map_err(|error| format!("{error:#}"));
    match connect {
        Ok(latency) => println!(
            "connect: p50 {:.2} ms, p99 {:.2} ms",
            latency.p50_ms, latency.p99_ms
        ),
        Err(error) => println!("connect latency not measured: {error}"),
    }
    Ok(Box::new(netd))
}

/// Checks the path works (a ping fails fast and clearly) and starts the servers.
fn start_testbed(topology: Box<dyn Topology>, log_dir: &Path) -> Result<Testbed> {
    let server_ip = topology.server_ip().to_string();
    cmd::run(
        &mut topology
            .client()
            .exec("ping", ["-c", "2", "-i", "0.2", "-W", "2", &server_ip]),
    )
    .context("client cannot reach server")?;
    let servers = Servers::start(topology.as_ref(), log_dir)?;
    Ok(Testbed {
        _servers: servers,
        topology,
    })
}

fn measure_round(
    topology: &dyn Topology,
    run: &mut TopologyRun,
    round: u32,
    Rounds { rounds, seconds }: Rounds,
) -> Result<()> {
    let label = topology.kind().label();
    let mut line = format!("round {round}/{rounds} {label}:");
    let mut failed = |what: &str, error: anyhow::Error, line: &mut String| {
        line.push_str(&format!(" {what} failed;"));
        run.errors.push(format!("round {round} {what}: {error:#}"));
    };
    let target = measure::Target::of(topology);
    match measure::udp_small_packet_rate(&target, seconds) {
        Ok(pps) => {
            line.push_str(&format!(" UDP {:.0} kpps;", pps / 1e3));
            run.udp_pps.push(pps);
        }
        Err(error) => failed("UDP", error, &mut line),
    }
    interrupt::check()?;
    match measure::tcp_throughput(&target, seconds) {
        Ok(bps) => {
            line.push_str(&format!(" TCP {:.2} Gbit/s;", bps / 1e9));
            run.tcp_bits_per_second.push(bps);
        }
        Err(error) => failed("TCP", error, &mut line),
    }
    interrupt::check()?;
    match measure::tcp_round_trip(&target, seconds) {
        Ok((p50, p99)) => {
            line.push_str(&format!(" RTT p50 {p50:.1} µs, p99 {p99:.1} µs"));
            run.rtt_p50_us.push(p50);
            run.rtt_p99_us.push(p99);
        }
        Err(error) => failed("RTT", error, &mut line),
    }
    interrupt::check()?;
    println!("{line}");
    Ok(())
}

fn write_results(results: &Results, options: &Options) -> Result<()> {
    // One chart per run and part: a section must keep showing its own numbers.
    let stamp = format!("{}-{}", results.date, results.time.replace(':', ""));
    let charts = report::Charts {
        c2c: format!("{stamp}-c2c.svg"),
        nat: format!("{stamp}-nat.svg"),
        engines: format!("{stamp}-engines.svg"),
        overlay: format!("{stamp}-overlay.svg"),
    };
    println!("\n{}", report::section(results, &charts));
    if options.no_write {
        println!("(--no-write: bench/ left untouched)");
        return Ok(());
    }
    let bench_dir = workspace::root().join("bench");
    std::fs::create_dir_all(&bench_dir)?;
    let mut written = vec!["bench/RESULTS.md".to_string()];
    let mut write_chart = |file: &str, svg: String| -> Result<()> {
        let path = bench_dir.join(file);
        std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(format!("bench/{file}"));
        Ok(())
    };
    let (date, time) = (&results.date, &results.time);
    if let Some(c2c) = &results.c2c {
        write_chart(&charts.c2c, chart::svg(results, c2c))?;
    }
    if let Some(nat) = &results.nat {
        write_chart(&charts.nat, nat::chart::svg(nat, date, time))?;
    }
    if let Some(engines) = &results.engines {
        write_chart(&charts.engines, engines::chart::svg(engines, date, time))?;
    }
    if let Some(overlay) = &results.overlay {
        write_chart(&charts.overlay, overlay::chart::svg(overlay, date, time))?;
    }
    report::append(results, &bench_dir.join("RESULTS.md"), &charts)?;
    println!("wrote {}", written.join(", "));
    Ok(())
}

/// The bench's scratch directory (logs, rules file, netd state); removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create(path: PathBuf) -> Result<Self> {
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
