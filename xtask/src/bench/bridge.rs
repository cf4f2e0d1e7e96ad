//! The baseline Docker users have: a Linux bridge plus iptables rules in Docker's layout.
//!
//! Everything lives in a private "host" namespace so the root namespace's bridge, sysctls and
//! iptables stay untouched; client and server hang off the bridge like two containers.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::topology::{Kind, Topology};
use crate::cmd;
use crate::netns::Netns;

const BRIDGE: &str = "br0";
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

        // Docker turns on forwarding when it starts.
        cmd::run(&mut host.exec("sysctl", ["-w", "net.ipv4.ip_forward=1"]))?;
        cmd::run(&mut host.exec("ip", ["link", "add", BRIDGE, "type", "bridge"]))?;
        cmd::run(&mut host.exec(
            "ip",
            ["addr", "add", &format!("{GATEWAY}/24"), "dev", BRIDGE],
        ))?;
        cmd::run(&mut host.exec("ip", ["link", "set", BRIDGE, "up"]))?;
        for (port, sandbox, ip) in [
            ("vethc", &client, CLIENT_IP.to_string()),
            ("veths", &server, SERVER_IP.to_string()),
        ] {
            cmd::run(&mut host.exec(
                "ip",
                [
                    "link",
                    "add",
                    port,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    sandbox.name(),
                ],
            ))?;
            cmd::run(&mut host.exec("ip", ["link", "set", port, "master", BRIDGE, "up"]))?;
            cmd::run(&mut sandbox.exec("ip", ["addr", "add", &format!("{ip}/24"), "dev", "eth0"]))?;
            cmd::run(&mut sandbox.exec("ip", ["link", "set", "eth0", "up"]))?;
            cmd::run(&mut sandbox.exec("ip", ["route", "add", "default", "via", GATEWAY]))?;
        }

        // br_netfilter is built into this kernel (no modules); its sysctls are per namespace.
        let bridge_netfilter =
            cmd::succeeds(&mut host.exec("test", ["-d", "/proc/sys/net/bridge"]));
        if bridge_netfilter {
            cmd::run(&mut host.exec("sysctl", ["-w", "net.bridge.bridge-nf-call-iptables=1"]))?;
        } else {
            println!("br_netfilter is not available: iptables will not see bridged traffic");
        }

        let rules = work_dir.join("docker-iptables.rules");
        std::fs::write(&rules, docker_rules())
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

/// Docker 20.10's filter and nat rules for one bridge network (docker0 here called br0).
fn docker_rules() -> String {
    format!(
        "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o {BRIDGE} -j DOCKER
-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT
-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i {BRIDGE} ! -o {BRIDGE} -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o {BRIDGE} -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s {SUBNET} ! -o {BRIDGE} -j MASQUERADE
-A DOCKER -i {BRIDGE} -j RETURN
COMMIT
"
    )
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
