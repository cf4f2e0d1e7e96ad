//! The baseline: Docker's classic overlay driver, built by hand on two "hosts".
//!
//! Per host, as Docker 20.10 lays it out: the host namespace holds the underlay, Docker's
//! default iptables ruleset for docker0 (idle here) with br_netfilter on, and the vxlan device's
//! UDP socket; the device itself is moved into a separate overlay namespace, where it is a port
//! of a Linux bridge carrying the network's gateway address, next to the sandbox's veth. The
//! vxlan device does not learn and answers ARP itself (`nolearning proxy`); the peer sandbox's
//! MAC is a static fdb entry pointing at the other host and a permanent neighbour entry, as
//! Docker's driver programs them from its peer database. Overlay MTU 1450.

use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context as _, Result};

use super::layout::{
    join_underlay, mac_of, BASELINE_DOCKER0_GATEWAY, BASELINE_DOCKER0_SUBNET, BASELINE_GATEWAY,
    BASELINE_SANDBOXES, BASELINE_UNDERLAY, OVERLAY_MTU, VNI, VXLAN_PORT,
};
use crate::bench::docker_host::{attach, create_bridge, enable_bridge_netfilter, ruleset};
use crate::bench::topology::{Kind, Topology};
use crate::cmd;
use crate::netns::Netns;

/// The vxlan device, and the sandbox's veth in the overlay namespace.
const VXLAN: &str = "vx0";
const PORT: &str = "veth0";

pub struct KernelVxlan {
    /// Sandbox i on host i; dropped first, then the overlay namespaces, then the hosts.
    sandboxes: Vec<Netns>,
    overlay_namespaces: Vec<Netns>,
    hosts: Vec<Netns>,
    /// Whether br_netfilter exists here (as on a Docker host).
    bridge_netfilter: bool,
}

impl KernelVxlan {
    pub fn setup(prefix: &str, work_dir: &Path) -> Result<Self> {
        let mut layout = Self {
            sandboxes: Vec::new(),
            overlay_namespaces: Vec::new(),
            hosts: Vec::new(),
            bridge_netfilter: false,
        };
        for i in 1..=2 {
            layout.hosts.push(Netns::create(&format!("{prefix}k{i}"))?);
            layout
                .overlay_namespaces
                .push(Netns::create(&format!("{prefix}k{i}o"))?);
            layout
                .sandboxes
                .push(Netns::create(&format!("{prefix}k{i}s"))?);
        }
        join_underlay([&layout.hosts[0], &layout.hosts[1]], BASELINE_UNDERLAY)?;

        let rules = work_dir.join("overlay-docker-iptables.rules");
        std::fs::write(&rules, ruleset(BASELINE_DOCKER0_SUBNET, None, []))
            .with_context(|| format!("cannot write {}", rules.display()))?;
        for i in 0..2 {
            layout.docker_host(i, &rules)?;
            layout.overlay_network(i)?;
        }
        for i in 0..2 {
            layout.add_peer(i, 1 - i)?;
        }
        Ok(layout)
    }

    /// What a Docker host has before any overlay network: docker0 (ip_forward on),
    /// br_netfilter and Docker's ruleset.
    fn docker_host(&mut self, i: usize, rules: &Path) -> Result<()> {
        let host = &self.hosts[i];
        create_bridge(host, BASELINE_DOCKER0_GATEWAY)?;
        self.bridge_netfilter = enable_bridge_netfilter(host)?;
        cmd::run(&mut host.exec("iptables-restore", [rules]))
    }

    /// The overlay namespace of host `i`: bridge with the gateway, vxlan device created in the
    /// host namespace (its socket stays there) and moved in, the sandbox's veth.
    fn overlay_network(&self, i: usize) -> Result<()> {
        let (host, overlay, sandbox) = (
            &self.hosts[i],
            &self.overlay_namespaces[i],
            &self.sandboxes[i],
        );
        let (vni, port, local) = (
            VNI.to_string(),
            VXLAN_PORT.to_string(),
            BASELINE_UNDERLAY[i].to_string(),
        );
        let mtu = OVERLAY_MTU.to_string();
        create_bridge(overlay, BASELINE_GATEWAY)?;
        cmd::run(&mut host.exec(
            "ip",
            [
                "link",
                "add",
                VXLAN,
                "mtu",
                &mtu,
                "type",
                "vxlan",
                "id",
                &vni,
                "dstport",
                &port,
                "local",
                &local,
                "nolearning",
                "proxy",
            ],
        ))?;
        cmd::run(&mut host.exec("ip", ["link", "set", VXLAN, "netns", overlay.name()]))?;
        cmd::run(&mut overlay.exec(
            "ip",
            [
                "link",
                "set",
                VXLAN,
                "master",
                super::super::docker_host::BRIDGE,
                "up",
            ],
        ))?;
        let ip = BASELINE_SANDBOXES[i].to_string();
        attach(overlay, PORT, sandbox, &ip, BASELINE_GATEWAY)?;
        cmd::run(&mut overlay.exec("ip", ["link", "set", PORT, "mtu", &mtu]))?;
        cmd::run(&mut sandbox.exec("ip", ["link", "set", "eth0", "mtu", &mtu]))
    }

    /// Tells host `i` where the sandbox of host `peer` is: its MAC behind the peer's VTEP, and
    /// its address for the vxlan device's ARP proxy.
    fn add_peer(&self, i: usize, peer: usize) -> Result<()> {
        let overlay = &self.overlay_namespaces[i];
        let mac = mac_of(&self.sandboxes[peer], "eth0")?;
        let (ip, vtep) = (
            BASELINE_SANDBOXES[peer].to_string(),
            BASELINE_UNDERLAY[peer].to_string(),
        );
        cmd::run(&mut overlay.exec(
            "ip",
            [
                "neigh",
                "add",
                &ip,
                "lladdr",
                &mac,
                "dev",
                VXLAN,
                "nud",
                "permanent",
            ],
        ))?;
        cmd::run(&mut overlay.exec(
            "bridge",
            [
                "fdb",
                "add",
                &mac,
                "dev",
                VXLAN,
                "dst",
                &vtep,
                "self",
                "permanent",
            ],
        ))
    }
}

impl Topology for KernelVxlan {
    fn kind(&self) -> Kind {
        Kind::VxlanBridge
    }
    fn client(&self) -> &Netns {
        &self.sandboxes[0]
    }
    fn server(&self) -> &Netns {
        &self.sandboxes[1]
    }
    fn server_ip(&self) -> Ipv4Addr {
        BASELINE_SANDBOXES[1]
    }
    fn notes(&self) -> Vec<String> {
        let netfilter = if self.bridge_netfilter {
            "br_netfilter on"
        } else {
            "br_netfilter missing in this kernel"
        };
        let tracked = cmd::capture(
            &mut self.hosts[1].exec("cat", ["/proc/sys/net/netfilter/nf_conntrack_count"]),
        )
        .map_or_else(|e| format!("unknown ({e:#})"), |n| n.trim().to_string());
        vec![format!(
            "each host namespace has Docker 20.10's iptables ruleset for docker0 loaded \
             ({netfilter}); the outer VXLAN/UDP packets pass its netfilter hooks: {tracked} \
             conntrack entries on host 2 at the end"
        )]
    }
}
