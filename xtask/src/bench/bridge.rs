//! The baseline Docker users have: a Linux bridge plus iptables rules in Docker's layout.
//!
//! Everything lives in a private "host" namespace so the root namespace's bridge, sysctls and
//! iptables stay untouched; client and server hang off the bridge like two containers.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::docker_host::{attach, create_bridge, enable_bridge_netfilter, ruleset};
use super::topology::{Kind, Topology};
use crate::cmd;
use crate::netns::Netns;

const SUBNET: &str = "10.214.2.0/24";
const GATEWAY: &str = "10.214.2.1";
const CLIENT_IP: &str = "10.214.2.2";
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 2, 3);

pub struct DockerBridge {
    client: Netns,
    server: Netns,
    /// Holds the bridge and the iptables rules; dropped last so the others go first.
    host: Netns,
    /// Whether br_netfilter exists here, so that iptables sees bridged frames like on a Docker host.
    bridge_netfilter: bool,
}

impl DockerBridge {
    pub fn setup(prefix: &str, work_dir: &Path) -> Result<Self> {
        let host = Netns::create(&format!("{prefix}bh"))?;
        let client = Netns::create(&format!("{prefix}bc"))?;
        let server = Netns::create(&format!("{prefix}bs"))?;

        create_bridge(&host, GATEWAY)?;
        attach(&host, "vethc", &client, CLIENT_IP, GATEWAY)?;
        attach(&host, "veths", &server, &SERVER_IP.to_string(), GATEWAY)?;
        let bridge_netfilter = enable_bridge_netfilter(&host)?;
        if !bridge_netfilter {
            println!("br_netfilter is not available: iptables will not see bridged traffic");
        }

        let rules = work_dir.join("docker-iptables.rules");
        std::fs::write(&rules, ruleset(SUBNET, None, []))
            .with_context(|| format!("cannot write {}", rules.display()))?;
        cmd::run(&mut host.exec("iptables-restore", [&rules]))?;

        Ok(Self {
            client,
            server,
            host,
            bridge_netfilter,
        })
    }

    /// Packets counted by `FORWARD -j DOCKER-USER`, the first rule every forwarded packet meets.
    fn forwarded_packets(&self) -> Result<u64> {
        let rules = cmd::capture(&mut self.host.exec("iptables-save", ["-c", "-t", "filter"]))?;
        // Lines look like: "[123:4567] -A FORWARD -j DOCKER-USER".
        rules
            .lines()
            .find(|line| line.ends_with("-A FORWARD -j DOCKER-USER"))
            .and_then(|line| line.strip_prefix('['))
            .and_then(|line| line.split(':').next())
            .and_then(|packets| packets.parse().ok())
            .context("no counter on FORWARD -j DOCKER-USER")
    }
}

impl Topology for DockerBridge {
    fn kind(&self) -> Kind {
        Kind::Bridge
    }
    fn client(&self) -> &Netns {
        &self.client
    }
    fn server(&self) -> &Netns {
        &self.server
    }
    fn server_ip(&self) -> Ipv4Addr {
        SERVER_IP
    }
    fn notes(&self) -> Vec<String> {
        let seen = match (self.bridge_netfilter, self.forwarded_packets()) {
            (false, _) => "no: br_netfilter is not in this kernel".to_string(),
            (true, Ok(0)) => "no: 0 packets counted on FORWARD -j DOCKER-USER".to_string(),
            (true, Ok(packets)) => format!(
                "yes: bridge-nf-call-iptables=1, {packets} packets counted on FORWARD -j DOCKER-USER"
            ),
            (true, Err(error)) => format!("unknown: {error:#}"),
        };
        vec![format!("netfilter saw bridged traffic: {seen}")]
    }
}
