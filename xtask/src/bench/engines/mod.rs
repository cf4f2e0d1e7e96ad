//! The container-engine benchmarks of issue 6, each comparison measured side by side in one run:
//! 1. `docker run -d` to a running container on a netd network (netd's Docker plugin) vs. on
//!    Docker's own user-defined bridge network, 2. the same with 100 published ports, with the
//!    docker-proxy processes and memory behind them and netd's daemon RSS before and after,
//!    3. `podman run -d` with the netd CNI plugin vs. the reference plugins (bridge, portmap, ...).
//!
//! One "host" namespace holds a private dockerd (its own data/exec roots, socket, vfs storage),
//! podman (its own storage, configs and CNI dirs) and one netd daemon serving both (Docker plugin
//! socket `/run/docker/plugins/ndb<pid>.sock`, API socket for the CNI plugin, `--uplink` on the
//! veth to the bench's "outside" namespace). Rounds interleave the sides container by container,
//! so drift in the machine's load hits both alike. A side that cannot be set up or measured is
//! recorded with its reason and the others still run.

mod docker;
mod exec;
mod host;
mod podman;

pub mod chart;
pub mod report;
mod results;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use serde_json::json;

use crate::bench::netd::missing_daemon_flag;
use crate::bench::procfs::rss_mib;
use crate::interrupt;
use crate::netd_daemon::NetdDaemon;
use docker::Dockerd;
use exec::EngineCli as _;
use host::EngineHost;
use podman::Podman;
pub use results::EnginesResults;
use results::{Case, Pair, Side};

/// The root filesystem of the only image (busybox-static), built by `cargo xtask install`.
pub const BUSYBOX_TAR: &str = "/var/cache/netd-tests/busybox-rootfs.tar";
const DOCKER_IMAGE: &str = "ndb-busybox:latest";
const PODMAN_IMAGE: &str = "localhost/ndb-busybox:latest";
/// What every container runs: busybox's sleep as PID 1 (it ignores SIGTERM, so removal is -f).
const CONTAINER_COMMAND: [&str; 2] = ["sleep", "86400"];
/// Published ports of case 2: `-p 20000-20099:20000-20099`.
const PORTS: u32 = 100;
const FIRST_PORT: u32 = 20_000;

const DOCKER_BIP: &str = "10.214.9.1/24";
const DOCKER_BRIDGE_SUBNET: &str = "10.214.10.0/24";
const DOCKER_NETD_SUBNET: &str = "10.214.11.0/24";
const PODMAN_BRIDGE_SUBNET: &str = "10.214.12.0/24";
const PODMAN_BRIDGE_GATEWAY: &str = "10.214.12.1";
const PODMAN_NETD_SUBNET: &str = "10.214.13.0/24";
const PODMAN_NETD_GATEWAY: &str = "10.214.13.1";

pub struct Settings<'a> {
    pub prefix: &'a str,
    pub work_dir: &'a Path,
    pub netd_bin: &'a Result<PathBuf>,
    pub rounds: u32,
    /// Containers per side and round for `docker run` and `podman run`.
    pub containers: u32,
}

/// Everything of one run. Field order is drop order: podman's containers go while netd still
/// answers their CNI DEL; dockerd removes its containers and networks (netd's plugin still up),
/// then stops; then netd; the host last (leftovers, mounts, cgroups, namespaces).
struct Bed {
    podman: Option<Podman>,
    docker: Option<Dockerd>,
    netd: Option<NetdDaemon>,
    /// Networks per engine and side, once created.
    docker_networks: Vec<(Side, String)>,
    podman_networks: Vec<(Side, String)>,
    host: EngineHost,
}

impl Bed {
    fn network(networks: &[(Side, String)], side: Side) -> Option<&str> {
        networks
            .iter()
            .find(|(s, _)| *s == side)
            .map(|(_, name)| name.as_str())
    }

    /// Adds netd's log to an error of netd's side: the log is the only clue.
    fn explain(&self, side: Side, error: anyhow::Error) -> anyhow::Error {
        match (side, &self.netd) {
            (Side::Netd, Some(netd)) => netd.with_log(error),
            _ => error,
        }
    }
}

pub fn run(settings: &Settings) -> Result<EnginesResults> {
    let mut results = EnginesResults::new(settings.containers, PORTS);
    if !Path::new(BUSYBOX_TAR).exists() {
        let reason = format!(
            "the image's root filesystem {BUSYBOX_TAR} is missing: run `cargo xtask install`"
        );
        println!("\n!! engines: {reason}");
        fail_everything(&mut results, &reason);
        return Ok(results);
    }
    let host = match EngineHost::setup(settings.prefix, settings.work_dir.join("engines")) {
        Ok(host) => host,
        Err(error) => {
            fail_everything(&mut results, &format!("host namespaces: {error:#}"));
            return Ok(results);
        }
    };
    let mut bed = Bed {
        podman: None,
        docker: None,
        netd: None,
        docker_networks: Vec::new(),
        podman_networks: Vec::new(),
        host,
    };
    setup(&mut bed, &mut results, settings)?;

    for round in 1..=settings.rounds {
        println!("\n== engines round {round}/{}", settings.rounds);
        start_round(&mut results, &bed, Engine::Docker, round, settings)?;
        ports_round(&mut results, &bed, round)?;
        start_round(&mut results, &bed, Engine::Podman, round, settings)?;
    }
    println!("\n== engines: tearing down");
    drop(bed);
    Ok(results)
}

/// Sets up each engine and side; a failure is recorded on the cases it stops.
fn setup(bed: &mut Bed, results: &mut EnginesResults, settings: &Settings) -> Result<()> {
    let prefix = settings.prefix;
    println!("\n== engines: starting dockerd in {}", bed.host.host.name());
    let docker_cgroup = format!("{prefix}docker");
    bed.host.own_cgroup(&docker_cgroup);
    let dockerd = Dockerd::start(
        &bed.host.host,
        bed.host.dir().join("docker"),
        DOCKER_BIP,
        &docker_cgroup,
    )
    .and_then(|dockerd| {
        dockerd.cli(&["import", BUSYBOX_TAR, DOCKER_IMAGE])?;
        Ok(dockerd)
    });
    match dockerd {
        Ok(dockerd) => {
            results.notes.push(format!(
                "dockerd {} (Debian docker.io; vfs storage driver, userland proxy on, containerd \
                 of its own), driven with /usr/bin/docker",
                dockerd.version()
            ));
            bed.docker = Some(dockerd);
        }
        Err(error) => fail_docker(results, None, &format!("dockerd: {error:#}")),
    }
    if let Some(dockerd) = &bed.docker {
        let name = format!("{prefix}dbr");
        match dockerd.cli(&["network", "create", "--subnet", DOCKER_BRIDGE_SUBNET, &name]) {
            Ok(_) => bed.docker_networks.push((Side::Baseline, name)),
            Err(error) => fail_docker(
                results,
                Some(Side::Baseline),
                &format!("Docker's bridge network: {error:#}"),
            ),
        }
    }
    interrupt::check()?;

    println!("\n== engines: setting up podman");
    let podman_cgroup = format!("/{prefix}podman");
    bed.host.own_cgroup(&podman_cgroup);
    let podman = Podman::setup(
        &bed.host.host,
        bed.host.dir().join("podman"),
        &podman_cgroup,
    )
    .and_then(|mut podman| {
        podman.cli(&["import", BUSYBOX_TAR, PODMAN_IMAGE])?;
        let name = format!("{prefix}pbr");
        podman.add_network(&name, &bridge_conflist(&name, &podman.cni_data_dir()))?;
        Ok((podman, name))
    });
    match podman {
        Ok((podman, name)) => {
            results.notes.push(format!(
                "podman {} (Debian; CNI backend, vfs storage, cgroupfs, runc); baseline conflist as \
                 `podman network create` writes it: bridge (ipMasq, host-local IPAM), portmap, \
                 firewall, tuning",
                podman.version()
            ));
            bed.podman = Some(podman);
            bed.podman_networks.push((Side::Baseline, name));
        }
        Err(error) => fail_podman(results, None, &format!("podman: {error:#}")),
    }
    interrupt::check()?;

    println!(
        "\n== engines: starting netd (Docker plugin and CNI) with --uplink {}",
        host::UPLINK
    );
    match start_netd(bed, settings) {
        Ok(netd) => netd_networks(bed, results, prefix, &netd),
        Err(error) => {
            let reason = format!("netd: {error:#}");
            let mut cases = Vec::new();
            if bed.docker.is_some() {
                cases.extend([Case::DockerRun, Case::DockerRunPorts]);
            }
            if bed.podman.is_some() {
                cases.push(Case::PodmanRun);
            }
            fail(results, &cases, Some(Side::Netd), &reason);
        }
    }
    interrupt::check()?;

    println!("\n== engines: sanity checks (two containers per network, one pings the other)");
    for (side, network) in bed.docker_networks.clone() {
        let check = docker_reach(bed, &network).map_err(|e| bed.explain(side, e));
        record_check(results, &format!("docker network {network}"), check);
    }
    for (side, network) in bed.podman_networks.clone() {
        let check = podman_reach(bed, &network).map_err(|e| bed.explain(side, e));
        record_check(results, &format!("podman network {network}"), check);
    }
    // The contract: networks created through Docker show in netd under Docker's name (checked
    // after the sanity checks, so that containers have joined it).
    if let (Some(netd), Some(name)) = (&bed.netd, Bed::network(&bed.docker_networks, Side::Netd)) {
        match netd.cli_quiet(&["network", "ls"]) {
            Ok(listed) if listed.split_whitespace().any(|word| word == name) => {}
            Ok(listed) => results.notes.push(format!(
                "`netd network ls` does not show the Docker network's name {name}: {}",
                listed.lines().skip(1).collect::<Vec<_>>().join("; ")
            )),
            Err(error) => results.errors.push(format!("netd network ls: {error:#}")),
        }
    }
    Ok(())
}

/// What the engines need to reach the netd daemon.
struct NetdAccess {
    /// The Docker driver (and IPAM driver) name: the plugin socket's file stem.
    driver: String,
    /// The daemon's API socket, for the CNI plugin.
    socket: PathBuf,
    /// target/release/netd-cni.
    cni_bin: PathBuf,
}

/// The netd daemon: Docker plugin socket, API socket for the CNI plugin, explicit uplink.
fn start_netd(bed: &mut Bed, settings: &Settings) -> Result<NetdAccess> {
    let netd_bin = settings
        .netd_bin
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let flags = [
        "--uplink",
        "--cgroup",
        "--docker-plugin-socket",
        "--docker-host",
    ];
    if let Some(flag) = missing_daemon_flag(netd_bin, &flags)? {
        bail!("`netd daemon` has no {flag} flag yet");
    }
    let cni_bin = netd_bin.with_file_name("netd-cni");
    if !cni_bin.exists() {
        bail!(
            "{} is missing (built by `cargo build --release -p netd`)",
            cni_bin.display()
        );
    }
    let prefix = settings.prefix;
    let driver = format!("ndb{}", std::process::id());
    let plugin_socket = PathBuf::from(format!("/run/docker/plugins/{driver}.sock"));
    bed.host.own_file(plugin_socket.clone());
    let cgroup = bed.host.create_cgroup2(&format!("{prefix}ecg"))?;
    let mut args = vec![
        "--uplink".to_string(),
        host::UPLINK.to_string(),
        "--cgroup".to_string(),
        cgroup.display().to_string(),
        "--docker-plugin-socket".to_string(),
        plugin_socket.display().to_string(),
    ];
    if let Some(dockerd) = &bed.docker {
        args.extend([
            "--docker-host".to_string(),
            format!("unix://{}", dockerd.socket().display()),
        ]);
    }
    let netd = NetdDaemon::start_with_args(
        netd_bin,
        bed.host.dir().join("netd"),
        PathBuf::from(format!("/sys/fs/bpf/{prefix}netd-engines")),
        Some(bed.host.host.name()),
        &args,
    )?;
    let socket = netd.socket().to_path_buf();
    bed.netd = Some(netd);
    Ok(NetdAccess {
        driver,
        socket,
        cni_bin,
    })
}

/// One netd network per engine: through Docker's plugin API, and as a CNI conflist.
fn netd_networks(bed: &mut Bed, results: &mut EnginesResults, prefix: &str, netd: &NetdAccess) {
    if let Some(dockerd) = &bed.docker {
        let name = format!("{prefix}dnetd");
        let driver = netd.driver.as_str();
        let created = dockerd.cli(&[
            "network",
            "create",
            "-d",
            driver,
            "--ipam-driver",
            driver,
            "--subnet",
            DOCKER_NETD_SUBNET,
            &name,
        ]);
        match created {
            Ok(_) => bed.docker_networks.push((Side::Netd, name)),
            Err(error) => {
                let error = bed.explain(Side::Netd, error);
                fail_docker(
                    results,
                    Some(Side::Netd),
                    &format!("netd's Docker network: {error:#}"),
                );
            }
        }
    }
    if let Some(podman) = &mut bed.podman {
        let name = format!("{prefix}pnetd");
        let added = podman
            .add_plugin("netd", &netd.cni_bin)
            .and_then(|()| podman.add_network(&name, &netd_conflist(&name, &netd.socket)));
        match added {
            Ok(()) => bed.podman_networks.push((Side::Netd, name)),
            Err(error) => fail_podman(
                results,
                Some(Side::Netd),
                &format!("netd's CNI network: {error:#}"),
            ),
        }
    }
}

/// The conflist podman 4.3 itself writes for `podman network create --subnet …` (CNI backend):
/// bridge, portmap, firewall (which lets the traffic through Docker's FORWARD policy DROP in the
/// same namespace) and tuning; only host-local's data dir is moved into the bench's directory.
fn bridge_conflist(name: &str, data_dir: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "0.4.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": "pbr0",
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "ranges": [[{"subnet": PODMAN_BRIDGE_SUBNET, "gateway": PODMAN_BRIDGE_GATEWAY}]],
                    "dataDir": data_dir,
                },
                "capabilities": {"ips": true}
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
            {"type": "firewall", "backend": ""},
            {"type": "tuning"}
        ]
    })
}

fn netd_conflist(name: &str, socket: &Path) -> serde_json::Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "netd",
                "socket": socket,
                "subnet": PODMAN_NETD_SUBNET,
                "gateway": PODMAN_NETD_GATEWAY,
                "capabilities": {"portMappings": true}
            }
        ]
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    Docker,
    Podman,
}

/// Cases 1 and 3: N containers per side, alternating sides container by container (and which
/// side goes first from one container to the next); the round's containers are removed after.
fn start_round(
    results: &mut EnginesResults,
    bed: &Bed,
    engine: Engine,
    round: u32,
    settings: &Settings,
) -> Result<()> {
    let (case, networks) = match engine {
        Engine::Docker if bed.docker.is_some() => (Case::DockerRun, &bed.docker_networks),
        Engine::Podman if bed.podman.is_some() => (Case::PodmanRun, &bed.podman_networks),
        _ => return Ok(()),
    };
    let mut started: Vec<String> = Vec::new();
    let mut failed: Vec<Side> = Vec::new();
    let first = results.run(case, Side::Baseline).samples_ms.len();
    let first_netd = results.run(case, Side::Netd).samples_ms.len();
    for i in 0..settings.containers {
        let mut order: Vec<&(Side, String)> = networks.iter().collect();
        if (i + round) % 2 == 1 {
            order.reverse();
        }
        let netd_first = order.first().is_some_and(|(side, _)| *side == Side::Netd);
        // This container's pair: one start per side, back to back.
        let mut pair: [Option<f64>; 2] = [None, None];
        for (side, network) in order {
            interrupt::check()?;
            if failed.contains(side) {
                continue;
            }
            let mut args = vec!["--network", network.as_str()];
            let image = match engine {
                Engine::Docker => DOCKER_IMAGE,
                Engine::Podman => PODMAN_IMAGE,
            };
            args.push(image);
            args.extend(CONTAINER_COMMAND);
            let outcome = match engine {
                Engine::Docker => bed.docker.as_ref().map(|d| d.run_detached(&args)),
                Engine::Podman => bed.podman.as_ref().map(|p| p.run_detached(&args)),
            }
            .expect("the engine is up");
            match outcome {
                Ok((elapsed, id)) => {
                    started.push(id);
                    let ms = elapsed.as_secs_f64() * 1e3;
                    results.run_mut(case, *side).samples_ms.push(ms);
                    pair[side.index()] = Some(ms);
                }
                Err(error) => {
                    let error = bed.explain(*side, error);
                    println!(
                        "round {round} {} ({}): failed: {error:#}",
                        case.short(),
                        side.label(case)
                    );
                    failed.push(*side);
                    results
                        .run_mut(case, *side)
                        .errors
                        .push(format!("round {round} container {}: {error:#}", i + 1));
                }
            }
        }
        if let [Some(baseline_ms), Some(netd_ms)] = pair {
            results.pairs_mut(case).push(Pair {
                baseline_ms,
                netd_ms,
                netd_first,
            });
        }
    }
    let summary = |side: Side, from: usize| {
        let samples = &results.run(case, side).samples_ms[from..];
        match super::stats::median(samples) {
            Some(p50) => format!("{} p50 {p50:.0} ms ({})", side.label(case), samples.len()),
            None => format!("{} —", side.label(case)),
        }
    };
    println!(
        "round {round} {}: {}; {}",
        case.short(),
        summary(Side::Baseline, first),
        summary(Side::Netd, first_netd)
    );
    let removed = match engine {
        Engine::Docker => bed.docker.as_ref().map(|d| d.remove(&started)),
        Engine::Podman => bed.podman.as_ref().map(|p| p.remove(&started)),
    };
    if let Some(Err(error)) = removed {
        results.errors.push(format!(
            "round {round} removing {} containers: {error:#}",
            case.short()
        ));
    }
    Ok(())
}

/// Case 2: one container with 100 published ports per side; the processes and memory behind
/// them are read while it runs, then it is removed.
fn ports_round(results: &mut EnginesResults, bed: &Bed, round: u32) -> Result<()> {
    let Some(dockerd) = &bed.docker else {
        return Ok(());
    };
    let case = Case::DockerRunPorts;
    let spec = format!(
        "{FIRST_PORT}-{}:{FIRST_PORT}-{}",
        FIRST_PORT + PORTS - 1,
        FIRST_PORT + PORTS - 1
    );
    let mut order: Vec<&(Side, String)> = bed.docker_networks.iter().collect();
    if round.is_multiple_of(2) {
        order.reverse();
    }
    for (side, network) in order {
        interrupt::check()?;
        let side = *side;
        let netd_pid = bed.netd.as_ref().and_then(NetdDaemon::pid);
        let rss_before = netd_pid.and_then(rss_mib);
        let mut args = vec!["--network", network.as_str(), "-p", spec.as_str()];
        args.push(DOCKER_IMAGE);
        args.extend(CONTAINER_COMMAND);
        let (elapsed, id) = match dockerd.run_detached(&args) {
            Ok(started) => started,
            Err(error) => {
                let error = bed.explain(side, error);
                println!(
                    "round {round} {} ({}): failed: {error:#}",
                    case.short(),
                    side.label(case)
                );
                results
                    .run_mut(case, side)
                    .errors
                    .push(format!("round {round}: {error:#}"));
                continue;
            }
        };
        let proxies = dockerd.proxies();
        // fold, not sum: a float sum of nothing is -0.0.
        let proxy_rss = proxies.iter().map(|(_, rss)| rss).fold(0.0, |a, b| a + b);
        let ms = elapsed.as_secs_f64() * 1e3;
        results.run_mut(case, side).samples_ms.push(ms);
        let footprint = results.footprint_mut(side);
        footprint.proxies.push(proxies.len());
        footprint.proxy_rss_mib.push(proxy_rss);
        let mut line = format!(
            "round {round} {} ({}): {ms:.0} ms; {} docker-proxy processes, {proxy_rss:.1} MiB RSS",
            case.short(),
            side.label(case),
            proxies.len()
        );
        if let (Side::Netd, Some(pid), Some(before)) = (side, netd_pid, rss_before) {
            let after = rss_mib(pid).unwrap_or(f64::NAN);
            let children = docker::children_of(pid).len();
            footprint.netd_rss_before_mib.push(before);
            footprint.netd_rss_after_mib.push(after);
            footprint.netd_children.push(children);
            line.push_str(&format!(
                "; netd daemon RSS {before:.1} -> {after:.1} MiB, {children} child processes"
            ));
        }
        println!("{line}");
        if let Err(error) = dockerd.remove(&[id]) {
            results.errors.push(format!(
                "round {round} removing the 100-port container: {error:#}"
            ));
        }
    }
    Ok(())
}

/// Two containers on a Docker network; the second pings the first.
fn docker_reach(bed: &Bed, network: &str) -> Result<()> {
    let dockerd = bed.docker.as_ref().context("dockerd is not up")?;
    let mut ids = Vec::new();
    let outcome = (|| {
        for _ in 0..2 {
            let mut args = vec!["--network", network, "--cap-add", "NET_RAW", DOCKER_IMAGE];
            args.extend(CONTAINER_COMMAND);
            ids.push(dockerd.run_detached(&args)?.1);
        }
        let ip = dockerd.cli(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &ids[0],
        ])?;
        dockerd.cli(&["exec", &ids[1], "ping", "-c", "1", "-W", "2", ip.trim()])?;
        Ok(())
    })();
    let removed = dockerd.remove(&ids);
    outcome.and(removed)
}

/// Two containers on a podman (CNI) network; the second pings the first.
fn podman_reach(bed: &Bed, network: &str) -> Result<()> {
    let podman = bed.podman.as_ref().context("podman is not set up")?;
    let mut ids = Vec::new();
    let outcome = (|| {
        for _ in 0..2 {
            let mut args = vec!["--network", network, "--cap-add", "NET_RAW", PODMAN_IMAGE];
            args.extend(CONTAINER_COMMAND);
            ids.push(podman.run_detached(&args)?.1);
        }
        let ip = podman.cli(&[
            "inspect",
            "--format",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            &ids[0],
        ])?;
        podman.cli(&["exec", &ids[1], "ping", "-c", "1", "-W", "2", ip.trim()])?;
        Ok(())
    })();
    let removed = podman.remove(&ids);
    outcome.and(removed)
}

fn record_check(results: &mut EnginesResults, what: &str, check: Result<()>) {
    match check {
        Ok(()) => {
            println!("{what}: containers reach each other");
            results.notes.push(format!(
                "sanity check passed: two containers on {what} ping each other"
            ));
        }
        Err(error) => {
            println!("{what}: sanity check failed: {error:#}");
            results.errors.push(format!(
                "sanity check on {what}: containers cannot reach each other: {error:#}"
            ));
        }
    }
}

/// Nothing can be measured: the reason once, every case pointing to it.
fn fail_everything(results: &mut EnginesResults, reason: &str) {
    results.errors.push(format!("not measured: {reason}"));
    for run in &mut results.runs {
        run.errors.push("not measured (see above)".to_string());
    }
}

/// Docker's cases of one side (None: both sides) cannot be measured.
fn fail_docker(results: &mut EnginesResults, side: Option<Side>, reason: &str) {
    fail(
        results,
        &[Case::DockerRun, Case::DockerRunPorts],
        side,
        reason,
    );
}

fn fail_podman(results: &mut EnginesResults, side: Option<Side>, reason: &str) {
    fail(results, &[Case::PodmanRun], side, reason);
}

/// The reason once (it may carry a daemon's log), and each case it stops pointing to it.
fn fail(results: &mut EnginesResults, cases: &[Case], side: Option<Side>, reason: &str) {
    println!("not measured: {reason}");
    results.errors.push(format!("not measured: {reason}"));
    for &case in cases {
        for s in Side::ALL {
            if side.is_none_or(|side| side == s) {
                results
                    .run_mut(case, s)
                    .errors
                    .push("not measured (see above)".to_string());
            }
        }
    }
}
