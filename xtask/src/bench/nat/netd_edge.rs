//! netd on a host with an uplink: the daemon runs in the "host" namespace with `--uplink`
//! naming the bench's own veth (never the default, which is the machine's route) and its socket
//! hooks on the bench's own cgroup. Two sandboxes on one network: one whose published ports
//! change per N, one with iperf3/sockperf published on 127.0.0.1 that is also the egress client.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::cgroup::Cgroup;
use super::layout::{Block, HOST_UPLINK, LOCAL_IPERF_PORT, LOCAL_SOCKPERF_PORT, UPLINK};
use crate::bench::measure::{IPERF_PORT, SOCKPERF_PORT};
use crate::bench::procfs::rss_mib;
use crate::cmd;
use crate::netd_daemon::NetdDaemon;
use crate::netns::Netns;

const SUBNET: &str = "10.214.6.0/24";

pub struct NetdEdge {
    network: String,
    /// Whether the scale sandbox is connected (with the ports of the current N).
    scale_connected: bool,
    /// Sandboxes: [0] the scale server, [1] the localhost server and egress client.
    sandboxes: Vec<Netns>,
    daemon: NetdDaemon,
    /// Removed after the daemon stopped and its pins (hence its hook links) are gone.
    cgroup: Cgroup,
    pub outside: Netns,
    pub host: Netns,
}

impl NetdEdge {
    pub fn setup(prefix: &str, netd_bin: &Path, work_dir: &Path) -> Result<Self> {
        let help = cmd::capture(std::process::Command::new(netd_bin).args(["daemon", "--help"]))?;
        for flag in ["--uplink", "--cgroup"] {
            if !help.contains(flag) {
                bail!("`netd daemon` has no {flag} flag yet");
            }
        }
        let host = Netns::create(&format!("{prefix}xh"))?;
        let outside = Netns::create(&format!("{prefix}xo"))?;
        HOST_UPLINK.create(&host, &outside)?;
        let cgroup = Cgroup::create(&format!("{prefix}cg"))?;
        let args = [
            "--uplink".to_string(),
            UPLINK.to_string(),
            "--cgroup".to_string(),
            cgroup.path().display().to_string(),
        ];
        let daemon = NetdDaemon::start_with_args(
            netd_bin,
            work_dir.join("netd-nat"),
            PathBuf::from(format!("/sys/fs/bpf/{prefix}netd-nat")),
            Some(host.name()),
            &args,
        )?;
        let mut edge = Self {
            network: format!("{prefix}natnet"),
            scale_connected: false,
            sandboxes: Vec::new(),
            daemon,
            cgroup,
            outside,
            host,
        };
        let network = edge.network.clone();
        edge.daemon
            .cli(&["network", "create", "--subnet", SUBNET, &network])?;
        for role in ["xs", "xl"] {
            let name = format!("{prefix}{role}");
            edge.daemon.cli(&["sandbox", "create", &name])?;
            edge.sandboxes.push(Netns::adopt(&name));
        }
        let local = edge.sandboxes[1].name().to_string();
        let iperf = format!("127.0.0.1:{LOCAL_IPERF_PORT}:{IPERF_PORT}/tcp");
        let sockperf = format!("127.0.0.1:{LOCAL_SOCKPERF_PORT}:{SOCKPERF_PORT}/tcp");
        edge.daemon.cli(&[
            "network", "connect", "-p", &iperf, "-p", &sockperf, &network, &local,
        ])?;
        Ok(edge)
    }

    /// The sandbox that serves the scale runs (container port = host port).
    pub fn scale_server(&self) -> &Netns {
        &self.sandboxes[0]
    }

    /// The sandbox with iperf3/sockperf published on 127.0.0.1; also the egress client.
    pub fn local_server(&self) -> &Netns {
        &self.sandboxes[1]
    }

    pub fn local_server_ip(&self) -> Result<Ipv4Addr> {
        self.local_server().ipv4_of("eth0")
    }

    pub fn cgroup(&self) -> &Path {
        self.cgroup.path()
    }

    /// Reconnects the scale sandbox publishing exactly these ports; times the connect call
    /// (one CLI call with the -p specs, what a user runs), not the disconnect before it.
    pub fn publish(&mut self, blocks: &[Block]) -> Result<Duration> {
        let network = self.network.clone();
        let name = self.scale_server().name().to_string();
        if self.scale_connected {
            self.daemon
                .cli_quiet(&["network", "disconnect", &network, &name])?;
            self.scale_connected = false;
        }
        let specs: Vec<String> = blocks.iter().map(Block::publish_spec).collect();
        let mut args = vec!["network", "connect"];
        for spec in &specs {
            args.extend(["-p", spec.as_str()]);
        }
        args.extend([network.as_str(), name.as_str()]);
        println!("$ netd {}", args.join(" "));
        let started = Instant::now();
        self.daemon
            .cli_quiet(&args)
            .map_err(|e| self.daemon.with_log(e))?;
        let elapsed = started.elapsed();
        self.scale_connected = true;
        Ok(elapsed)
    }

    /// The daemon's resident memory, and how many processes it has (no proxy per port).
    pub fn daemon_footprint(&self) -> Option<(f64, usize)> {
        let pid = self.daemon.pid()?;
        let rss = rss_mib(pid)?;
        let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .map(|text| text.split_whitespace().count())
            .unwrap_or(0);
        Some((rss, children))
    }
}

impl Drop for NetdEdge {
    /// Removes through the daemon first (so it can clean its maps); the guards catch the rest.
    fn drop(&mut self) {
        self.daemon.remove_all(&self.sandboxes, &[&self.network]);
        // Leftover sandboxes go now; then the daemon stops (its pins go), then the cgroup and
        // the namespaces.
        self.sandboxes.clear();
    }
}
