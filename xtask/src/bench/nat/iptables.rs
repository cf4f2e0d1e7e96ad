//! The baseline: a Docker host without Docker. The "host" namespace has a Linux bridge, the
//! sandbox on it, ip_forward on and Docker's iptables rules; published ports are DNAT rules
//! (installed by iptables-restore) or, for localhost, `docker-proxy` processes.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::layout::{Block, HOST_UPLINK, LOCAL_IPERF_PORT, LOCAL_SOCKPERF_PORT};
use crate::bench::docker_host::{
    attach, create_bridge, enable_bridge_netfilter, ruleset, Published,
};
use crate::bench::measure::{IPERF_PORT, SOCKPERF_PORT};
use crate::bench::procfs::rss_mib;
use crate::netns::Netns;
use crate::process::Background;
use crate::{cmd, install, interrupt};

const SUBNET: &str = "10.214.5.0/24";
const GATEWAY: &str = "10.214.5.1";
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 5, 2);
/// The one container port every published host port maps onto.
pub const CONTAINER_PORT: u16 = 8080;

pub struct IptablesEdge {
    /// The docker-proxy processes, stopped before the namespaces go.
    proxies: Vec<Background>,
    pub server: Netns,
    pub outside: Netns,
    pub host: Netns,
    rules: PathBuf,
}

impl IptablesEdge {
    pub fn setup(prefix: &str, work_dir: &Path) -> Result<Self> {
        let edge = Self {
            proxies: Vec::new(),
            server: Netns::create(&format!("{prefix}is"))?,
            outside: Netns::create(&format!("{prefix}io"))?,
            host: Netns::create(&format!("{prefix}ih"))?,
            rules: work_dir.join("nat-iptables.rules"),
        };
        let (host, server) = (&edge.host, &edge.server);
        HOST_UPLINK.create(host, &edge.outside)?;
        create_bridge(host, GATEWAY)?;
        attach(host, "veths", server, &SERVER_IP.to_string(), GATEWAY)?;
        enable_bridge_netfilter(host)?;
        // Nothing published yet, but MASQUERADE for egress is in place.
        edge.publish(&[])?;
        Ok(edge)
    }

    /// Replaces the rules with Docker's for these ports: one iptables-restore, timed. It starts
    /// from the rules without ports (untimed), as netd starts from a disconnected sandbox:
    /// otherwise removing the previous N's rules (up to 100,000) would be timed too.
    pub fn publish(&self, blocks: &[Block]) -> Result<Duration> {
        if !blocks.is_empty() {
            self.restore(&[])?;
        }
        self.restore(blocks)
    }

    fn restore(&self, blocks: &[Block]) -> Result<Duration> {
        let published = Published {
            ip: SERVER_IP,
            port: CONTAINER_PORT,
        };
        std::fs::write(&self.rules, ruleset(SUBNET, Some(&published), dnat(blocks)))
            .with_context(|| format!("cannot write {}", self.rules.display()))?;
        interrupt::check()?;
        let started = Instant::now();
        cmd::capture(&mut self.host.exec("iptables-restore", [&self.rules]))?;
        Ok(started.elapsed())
    }

    /// One docker-proxy per published localhost port, as dockerd runs them (userland-proxy on).
    pub fn start_proxies(&mut self, log_dir: &Path) -> Result<()> {
        // Debian's docker.io path, or where `cargo xtask install` extracted it.
        let docker_proxy = install::DOCKER_PROXIES
            .into_iter()
            .find(|path| Path::new(path).exists())
            .context("docker-proxy is not installed (run `cargo xtask install`)")?;
        for (host_port, container_port) in [
            (LOCAL_IPERF_PORT, IPERF_PORT),
            (LOCAL_SOCKPERF_PORT, SOCKPERF_PORT),
        ] {
            // dockerd hands docker-proxy a pipe as fd 3 to report readiness; the proxy writes
            // to it and closes it. Without one, fd 3 is its own listener, which it then
            // closes. /dev/null stands in for the pipe; `exec` keeps the PID the proxy's.
            let proxy = Background::spawn(
                "docker-proxy",
                &mut self.host.exec(
                    "sh",
                    [
                        "-c",
                        r#"exec "$0" "$@" 3>/dev/null"#,
                        docker_proxy,
                        "-proto",
                        "tcp",
                        "-host-ip",
                        "127.0.0.1",
                        "-host-port",
                        &host_port.to_string(),
                        "-container-ip",
                        &SERVER_IP.to_string(),
                        "-container-port",
                        &container_port.to_string(),
                    ],
                ),
                &log_dir.join(format!("docker-proxy-{host_port}.log")),
            )?;
            self.proxies.push(proxy);
        }
        crate::bench::measure::wait_for_listeners(
            &self.host,
            &[LOCAL_IPERF_PORT, LOCAL_SOCKPERF_PORT],
        )
    }

    /// Resident memory of each docker-proxy (ip netns exec execs it, so the PID is its own).
    pub fn proxy_rss_mib(&self) -> Vec<f64> {
        self.proxies
            .iter()
            .filter_map(|p| rss_mib(p.pid()))
            .collect()
    }

    /// The iptables variant, e.g. "iptables v1.8.9 (nf_tables)": legacy and nft differ in cost.
    pub fn version(&self) -> String {
        cmd::capture(&mut self.host.exec("iptables", ["--version"]))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|e| format!("unknown ({e:#})"))
    }
}

/// The (host address, host port) of every published port, in order.
fn dnat(blocks: &[Block]) -> impl Iterator<Item = (Option<Ipv4Addr>, u16)> + '_ {
    blocks
        .iter()
        .flat_map(|block| block.ports().map(move |port| (block.host_ip, port)))
}

#[cfg(test)]
mod tests {
    use super::super::layout::blocks;
    use super::*;

    #[test]
    fn one_dnat_rule_per_port_in_order() {
        let published = Published {
            ip: Ipv4Addr::new(10, 214, 5, 2),
            port: 8080,
        };
        let blocks = blocks(100_000).unwrap();
        let text = ruleset("10.214.5.0/24", Some(&published), dnat(&blocks));
        let dnat: Vec<&str> = text.lines().filter(|l| l.contains("DNAT")).collect();
        assert_eq!(dnat.len(), 100_000);
        assert_eq!(
            dnat[0],
            "-A DOCKER -d 10.214.4.1/32 ! -i br0 -p tcp -m tcp --dport 10000 -j DNAT --to-destination 10.214.5.2:8080"
        );
        assert!(dnat[99_999]
            .starts_with("-A DOCKER -d 10.214.4.3/32 ! -i br0 -p tcp -m tcp --dport 59999 "));
        assert!(text.ends_with("COMMIT\n"));
    }
}
