//! Names and addresses of the overlay topologies: two "host" namespaces joined by an underlay
//! veth pair, one sandbox per host. Every address lives only inside the bench's own namespaces.

use std::net::Ipv4Addr;

use anyhow::Result;

use crate::cmd;
use crate::netns::Netns;

/// The underlay interface, on both ends of the veth pair between the two hosts.
pub const UNDERLAY: &str = "ul0";
/// VXLAN's IANA port, the one Docker's overlay driver and netd use.
pub const VXLAN_PORT: u16 = 4789;
/// Docker's overlay driver gives its first network VNI 256; netd allocates from 256 up too.
pub const VNI: u32 = 256;
/// Outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 bytes.
pub const VXLAN_OVERHEAD: u32 = 50;
/// The underlay veth's MTU (the kernel's default) and the overlay's, below it by the overhead.
pub const UNDERLAY_MTU: u32 = 1500;
pub const OVERLAY_MTU: u32 = UNDERLAY_MTU - VXLAN_OVERHEAD;

/// Kernel vxlan + bridge: underlay, docker0 (idle, for Docker's ruleset), overlay subnet.
pub const BASELINE_UNDERLAY: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 214, 20, 1), Ipv4Addr::new(10, 214, 20, 2)];
pub const BASELINE_DOCKER0_SUBNET: &str = "10.214.21.0/24";
pub const BASELINE_DOCKER0_GATEWAY: &str = "10.214.21.1";
pub const BASELINE_GATEWAY: &str = "10.214.22.1";
/// The sandbox on host 1 and the one on host 2 (the server).
pub const BASELINE_SANDBOXES: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 214, 22, 2), Ipv4Addr::new(10, 214, 22, 3)];

/// netd: underlay (etcd listens on host 1's address) and the overlay network's subnet.
pub const NETD_UNDERLAY: [Ipv4Addr; 2] =
    [Ipv4Addr::new(10, 214, 23, 1), Ipv4Addr::new(10, 214, 23, 2)];
pub const NETD_SUBNET: &str = "10.214.24.0/24";
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// Joins the two hosts with a veth pair, `ul0` on both ends, `ips[i]`/24 on host i.
pub fn join_underlay(hosts: [&Netns; 2], ips: [Ipv4Addr; 2]) -> Result<()> {
    cmd::run(&mut hosts[0].exec(
        "ip",
        [
            "link",
            "add",
            UNDERLAY,
            "type",
            "veth",
            "peer",
            "name",
            UNDERLAY,
            "netns",
            hosts[1].name(),
        ],
    ))?;
    for (host, ip) in hosts.iter().zip(ips) {
        cmd::run(&mut host.exec("ip", ["addr", "add", &format!("{ip}/24"), "dev", UNDERLAY]))?;
        cmd::run(&mut host.exec("ip", ["link", "set", UNDERLAY, "up"]))?;
    }
    Ok(())
}

/// The MAC address of `dev` in `netns`.
pub fn mac_of(netns: &Netns, dev: &str) -> Result<String> {
    let path = format!("/sys/class/net/{dev}/address");
    Ok(cmd::capture(&mut netns.exec("cat", [&path]))?
        .trim()
        .to_string())
}

/// The MTU of `dev` in `netns`.
pub fn mtu_of(netns: &Netns, dev: &str) -> Result<u32> {
    let path = format!("/sys/class/net/{dev}/mtu");
    Ok(cmd::capture(&mut netns.exec("cat", [&path]))?
        .trim()
        .parse()?)
}
