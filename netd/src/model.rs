//! The Container Network Model as netd stores it: networks, endpoints, sandboxes.
//! These records are the desired state; the kernel is made to match them.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Network drivers netd knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    Null,
    /// A VXLAN network spanning the hosts of the cluster store.
    Overlay,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Overlay => "overlay",
        }
    }

    /// Drivers whose endpoints are veths in netd's dataplane.
    pub fn switches(self) -> bool {
        matches!(self, Driver::Bridge | Driver::Overlay)
    }
}

/// Addressing of a bridge network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamPool {
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Dynamic addresses come only from here when set.
    pub ip_range: Option<Ipv4Net>,
    /// Reserved addresses, never handed out.
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// 64 hex digits, as Docker's.
    pub id: String,
    pub name: String,
    pub driver: Driver,
    /// Small integer naming the network in BPF maps; 0 for drivers without a dataplane.
    pub net_id: u32,
    /// RFC 3339 creation time.
    pub created: String,
    /// `None` for host and null networks.
    pub ipam: Option<IpamPool>,
    pub internal: bool,
    pub icc: bool,
    pub masquerade: bool,
    pub mtu: u32,
    /// The `-o` options as given, echoed by inspect.
    pub options: BTreeMap<String, String>,
    /// bridge, host and none: created at first start, never removed.
    pub predefined: bool,
    /// Created through Docker's plugin protocol: Docker owns its life cycle.
    #[serde(default)]
    pub docker: bool,
    /// The id under which Docker uses a netd network it adopted
    /// (`docker network create -d netd -o netd.network=NAME`).
    #[serde(default)]
    pub docker_id: Option<String>,
    /// Overlay networks: the VXLAN network identifier, the same on every host. The
    /// record itself is the cluster store's; this one is the host's copy.
    #[serde(default)]
    pub vni: Option<u32>,
}

/// An endpoint is written `Pending` before the kernel is touched and `Active` once the
/// veth, addresses and maps are in place; a restart rolls `Pending` ones back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointState {
    Pending,
    Active,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub sandbox_id: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
    /// Host-side veth, carrying the tc program.
    pub host_ifname: String,
    /// `ethN` inside the sandbox, known once the veth exists.
    pub sandbox_ifname: Option<String>,
    pub aliases: Vec<String>,
    pub state: EndpointState,
    /// Published ports (`-p`); absent in records of older builds.
    #[serde(default)]
    pub ports: Vec<crate::ports::PortMapping>,
    /// The CNI container ID that made this attachment (with `sandbox_ifname`, its CNI key).
    #[serde(default)]
    pub container_id: Option<String>,
}

/// An address pool handed to Docker by netd's IPAM driver, with the addresses it gave out.
/// Docker asks for a pool before the network exists, so pools live on their own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    /// The pool's id as Docker knows it: the subnet, e.g. `10.1.0.0/24`.
    pub id: String,
    pub subnet: Ipv4Net,
    /// `--ip-range`: dynamic addresses come only from here.
    pub ip_range: Option<Ipv4Net>,
    pub allocated: std::collections::BTreeSet<Ipv4Addr>,
}

/// A network namespace that endpoints attach to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub id: String,
    /// The netns name (under /run/netns) or the path the user gave.
    pub name: String,
    pub path: PathBuf,
    /// (st_dev, st_ino) of the netns when first seen: a recycled path is another sandbox.
    pub identity: (u64, u64),
    /// Made by `netd sandbox create`: netd deletes the netns on `sandbox rm`.
    pub owned: bool,
    /// Created on the `host` or `none` network: it can join no other.
    #[serde(default)]
    pub mode: Option<Driver>,
    /// A Docker sandbox: Docker binds the netns to the path only when the container starts,
    /// after Join, so the path's identity is never checked. Docker's Leave ends it, or the
    /// endpoint's veth vanishing with the netns.
    #[serde(default)]
    pub docker: bool,
}

/// Docker's MAC scheme for endpoints: 02:42 followed by the IPv4 address.
pub fn endpoint_mac(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// The MAC of a network's gateway (every host-side veth of the network carries it):
/// 02:4e followed by the gateway address, so it never equals an endpoint's MAC.
pub fn gateway_mac(gateway: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = gateway.octets();
    [0x02, 0x4e, a, b, c, d]
}

pub fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// A fresh 64-hex-digit id.
pub fn new_id() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Host-side veth name of an endpoint: `nd` and the id's first 12 digits (IFNAMSIZ is 16).
pub fn host_ifname(endpoint_id: &str) -> String {
    format!("nd{}", &endpoint_id[..12])
}

/// Linux's rule for interface names: 1-15 bytes, no `/`, `:` or whitespace, not `.` or `..`.
pub fn valid_ifname(name: &str) -> bool {
    (1..=15).contains(&name.len())
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
}

/// Whether `name` looks like a host-side veth netd made, so reconcile may delete it.
pub fn is_host_ifname(name: &str) -> bool {
    name.len() == 14
        && name.starts_with("nd")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_follow_docker_and_never_collide_with_the_gateway() {
        let ip: Ipv4Addr = "172.18.0.2".parse().unwrap();
        assert_eq!(format_mac(endpoint_mac(ip)), "02:42:ac:12:00:02");
        assert_ne!(endpoint_mac(ip), gateway_mac(ip));
    }

    #[test]
    fn host_ifnames_fit_ifnamsiz_and_are_recognised() {
        let id = new_id();
        let name = host_ifname(&id);
        assert!(name.len() < 16);
        assert!(is_host_ifname(&name));
        assert!(!is_host_ifname("eth0"));
        assert!(!is_host_ifname("ndXXXXXXXXXXXX"));
    }
}
