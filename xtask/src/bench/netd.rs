//! netd c2c: a netd daemon in its own "host" namespace, one network, two sandboxes; set up and
//! driven only through the CLI contract, like a user would.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::stats::Latency;
use super::topology::{Kind, Topology};
use crate::cmd;
use crate::netd_daemon::NetdDaemon;
use crate::netns::Netns;

const SUBNET: &str = "10.214.3.0/24";
/// Upper bound for the whole connect-latency loop, whatever the cycle count.
const CONNECT_LOOP_LIMIT: Duration = Duration::from_secs(120);

pub struct NetdC2c {
    network: String,
    /// The server's address, as netd's IPAM chose it.
    server_ip: Ipv4Addr,
    /// Sandboxes in creation order: client, server, then the one used for connect timing.
    sandboxes: Vec<Netns>,
    daemon: NetdDaemon,
    /// The daemon's namespace, only held so that it is deleted after the daemon stopped.
    _host: Netns,
}

impl NetdC2c {
    pub fn setup(prefix: &str, netd_bin: &Path, work_dir: &Path) -> Result<Self> {
        let host = Netns::create(&format!("{prefix}nh"))?;
        let daemon = NetdDaemon::start(
            netd_bin,
            work_dir.join("netd"),
            PathBuf::from(format!("/sys/fs/bpf/{prefix}netd")),
            Some(host.name()),
        )?;
        let mut topology = Self {
            network: format!("{prefix}net"),
            server_ip: Ipv4Addr::UNSPECIFIED,
            sandboxes: Vec::new(),
            daemon,
            _host: host,
        };
        let network = topology.network.clone();
        topology
            .daemon
            .cli(&["network", "create", "--subnet", SUBNET, &network])?;
        for role in ["nc", "ns"] {
            let name = format!("{prefix}{role}");
            topology.add_sandbox(&name)?;
            topology
                .daemon
                .cli(&["network", "connect", &network, &name])?;
        }
        topology.server_ip = topology.server().ipv4_of("eth0")?;
        Ok(topology)
    }

    fn add_sandbox(&mut self, name: &str) -> Result<()> {
        self.daemon.cli(&["sandbox", "create", name])?;
        self.sandboxes.push(Netns::adopt(name));
        Ok(())
    }

    /// Wall time of `netd network connect` over `cycles` connect+disconnect cycles of a spare sandbox.
    pub fn connect_latency(&mut self, prefix: &str, cycles: u32) -> Result<Latency> {
        let name = format!("{prefix}nx");
        self.add_sandbox(&name)?;
        let network = self.network.clone();
        let started = Instant::now();
        let mut samples = Vec::new();
        for _ in 0..cycles {
            if started.elapsed() > CONNECT_LOOP_LIMIT {
                bail!(
                    "connect loop exceeded {CONNECT_LOOP_LIMIT:?} after {} cycles",
                    samples.len()
                );
            }
            let connect_started = Instant::now();
            self.daemon
                .cli_quiet(&["network", "connect", &network, &name])?;
            samples.push(connect_started.elapsed());
            self.daemon
                .cli_quiet(&["network", "disconnect", &network, &name])?;
        }
        Ok(Latency::from_durations(&samples))
    }
}

/// The first of `flags` that `netd daemon --help` does not list: this netd predates it.
pub fn missing_daemon_flag<'a>(netd_bin: &Path, flags: &[&'a str]) -> Result<Option<&'a str>> {
    let help = cmd::capture(Command::new(netd_bin).args(["daemon", "--help"]))?;
    Ok(flags.iter().copied().find(|flag| !help.contains(flag)))
}

impl Topology for NetdC2c {
    fn kind(&self) -> Kind {
        Kind::Netd
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
}

impl Drop for NetdC2c {
    /// Removes through the daemon first (so it can clean its maps); the guards catch the rest.
    fn drop(&mut self) {
        self.daemon.remove_all(&self.sandboxes, &[&self.network]);
        // Leftover namespaces go now; then the fields drop in order: the daemon stops (its pins
        // are removed), then its namespace is deleted.
        self.sandboxes.clear();
    }
}
