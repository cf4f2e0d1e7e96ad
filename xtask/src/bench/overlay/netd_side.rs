//! netd's overlay: two hosts, each with its own netd daemon (own state dir, socket, bpffs dir
//! and cgroup for its socket hooks, `--uplink ul0`, `--advertise-addr` its underlay address),
//! one cluster through an etcd server on host 1's underlay address; one overlay network created
//! on host 1, one sandbox connected on each host. Set up only through the CLI contract, like a
//! user would.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use super::etcd::Etcd;
use super::layout::{join_underlay, mtu_of, NETD_SUBNET, NETD_UNDERLAY, UNDERLAY};
use crate::bench::nat::cgroup::Cgroup;
use crate::bench::netd::missing_daemon_flag;
use crate::bench::topology::{Kind, Topology};
use crate::netd_daemon::NetdDaemon;
use crate::netns::Netns;
use crate::{cmd, interrupt};

/// How long the network created on host 1 may take to show on host 2, and the sandbox on host 2
/// to answer from host 1 (the contract says about 1 s each).
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(15);

pub struct NetdOverlay {
    network: String,
    /// The server's address, as the cluster's IPAM chose it.
    server_ip: Ipv4Addr,
    /// Sandbox i on host i, once created.
    sandboxes: Vec<Netns>,
    /// Daemon i in host i; they stop (their pins go) before their cgroups, etcd and the hosts.
    daemons: Vec<NetdDaemon>,
    _cgroups: Vec<Cgroup>,
    etcd: Etcd,
    _hosts: Vec<Netns>,
}

/// The rows of `netd stats --format json` this part reads.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StatRow {
    kind: String,
    reason: String,
    packets: u64,
}

impl NetdOverlay {
    pub fn setup(prefix: &str, netd_bin: &Path, work_dir: &Path) -> Result<Self> {
        let flags = [
            "--cluster-store",
            "--advertise-addr",
            "--uplink",
            "--cgroup",
        ];
        if let Some(flag) = missing_daemon_flag(netd_bin, &flags)? {
            bail!("`netd daemon` has no {flag} flag yet: this netd has no overlay networks");
        }
        let hosts = vec![
            Netns::create(&format!("{prefix}n1"))?,
            Netns::create(&format!("{prefix}n2"))?,
        ];
        join_underlay([&hosts[0], &hosts[1]], NETD_UNDERLAY)?;
        println!("\n== overlay: starting etcd on {}", NETD_UNDERLAY[0]);
        let etcd = Etcd::start(&hosts[0], NETD_UNDERLAY[0], work_dir.join("overlay-etcd"))?;
        let mut cgroups = Vec::new();
        let mut daemons = Vec::new();
        for (i, host) in hosts.iter().enumerate() {
            let cgroup = Cgroup::create(&format!("{prefix}cg{}", i + 1))?;
            let args = [
                "--uplink",
                UNDERLAY,
                "--advertise-addr",
                &NETD_UNDERLAY[i].to_string(),
                "--cluster-store",
                &format!("etcd://{}", etcd.endpoint),
                "--docker-plugin-socket",
                "none",
                "--cgroup",
                &cgroup.path().display().to_string(),
            ]
            .map(String::from);
            cgroups.push(cgroup);
            daemons.push(NetdDaemon::start_with_args(
                netd_bin,
                work_dir.join(format!("netd-ov{}", i + 1)),
                PathBuf::from(format!("/sys/fs/bpf/{prefix}ov{}", i + 1)),
                Some(host.name()),
                &args,
            )?);
        }
        let mut overlay = Self {
            network: format!("{prefix}ov"),
            server_ip: Ipv4Addr::UNSPECIFIED,
            sandboxes: Vec::new(),
            daemons,
            _cgroups: cgroups,
            etcd,
            _hosts: hosts,
        };
        overlay.connect_sandboxes(prefix)?;
        Ok(overlay)
    }

    /// Creates the network on host 1, waits until host 2 sees it, connects one sandbox per
    /// host and waits until host 1's sandbox reaches host 2's.
    fn connect_sandboxes(&mut self, prefix: &str) -> Result<()> {
        let network = self.network.clone();
        self.daemons[0].cli(&[
            "network",
            "create",
            "-d",
            "overlay",
            "--subnet",
            NETD_SUBNET,
            &network,
        ])?;
        wait_for(&format!("network {network} to show on host 2"), || {
            self.daemons[1]
                .cli_quiet(&["network", "inspect", &network])
                .is_ok()
        })?;
        for (i, daemon) in self.daemons.iter().enumerate() {
            let name = format!("{prefix}n{}s", i + 1);
            daemon.cli(&["sandbox", "create", &name])?;
            self.sandboxes.push(Netns::adopt(&name));
            daemon
                .cli(&["network", "connect", &network, &name])
                .map_err(|e| daemon.with_log(e))?;
        }
        self.server_ip = self.server().ipv4_of("eth0")?;
        let server_ip = self.server_ip.to_string();
        wait_for(&format!("host 1's sandbox to reach {server_ip}"), || {
            cmd::succeeds(
                &mut self
                    .client()
                    .exec("ping", ["-c", "1", "-W", "1", &server_ip]),
            )
        })
        .map_err(|e| self.daemons[0].with_log(self.daemons[1].with_log(e)))
    }

    /// Delivery counters of host `i`'s dataplane with this reason, e.g. "encap".
    fn delivered(&self, i: usize, reason: &str) -> Result<u64> {
        let json = self.daemons[i].cli_quiet(&["stats", "--format", "json"])?;
        let rows: Vec<StatRow> = serde_json::from_str(&json).context("bad `netd stats` JSON")?;
        Ok(rows
            .iter()
            .filter(|row| row.kind == "delivery" && row.reason == reason)
            .map(|row| row.packets)
            .sum())
    }
}

/// Polls `done` every 100 ms until it holds, at most [`PROPAGATION_TIMEOUT`].
fn wait_for(what: &str, done: impl Fn() -> bool) -> Result<()> {
    let started = Instant::now();
    loop {
        interrupt::check()?;
        if done() {
            println!("{what}: after {} ms", started.elapsed().as_millis());
            return Ok(());
        }
        if started.elapsed() > PROPAGATION_TIMEOUT {
            bail!("timed out after {PROPAGATION_TIMEOUT:?} waiting for {what}");
        }
        sleep(Duration::from_millis(100));
    }
}

impl Topology for NetdOverlay {
    fn kind(&self) -> Kind {
        Kind::NetdOverlay
    }
    fn client(&self) -> &Netns {
        &self.sandboxes[0]
    }
    fn server(&self) -> &Netns {
        &self.sandboxes[1]
    }
    fn server_ip(&self) -> Ipv4Addr {
        self.server_ip
    }
    fn notes(&self) -> Vec<String> {
        let mtu = mtu_of(self.client(), "eth0")
            .map_or_else(|e| format!("unknown ({e:#})"), |mtu| mtu.to_string());
        let count = |i: usize, reason: &str| {
            self.delivered(i, reason)
                .map_or_else(|e| format!("unknown ({e:#})"), |n| n.to_string())
        };
        vec![
            format!(
                "cluster store: {} on host 1's underlay address {}; sandbox MTU {mtu}",
                self.etcd.version, self.etcd.endpoint
            ),
            format!(
                "packets encapsulated / decapsulated by netd's eBPF: host 1 {} / {}, host 2 {} / {}",
                count(0, "encap"),
                count(0, "decap"),
                count(1, "encap"),
                count(1, "decap")
            ),
        ]
    }
}

impl Drop for NetdOverlay {
    /// Removes through the daemons first (so they clean their maps and etcd records); the
    /// guards catch the rest.
    fn drop(&mut self) {
        for (i, daemon) in self.daemons.iter_mut().enumerate().rev() {
            let networks: &[&str] = if i == 0 { &[&self.network] } else { &[] };
            daemon.remove_all(self.sandboxes.get(i..=i).unwrap_or_default(), networks);
        }
        // Leftover sandboxes go now; then the daemons stop and their pins go, then the cgroups,
        // etcd and the host namespaces.
        self.sandboxes.clear();
    }
}
