//! The daemon's HTTP+JSON API: request and response bodies, shared by the daemon and the
//! CLI. Field names follow Docker's Engine API (`docker network inspect` output), so
//! tooling written for Docker reads them unchanged.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// API version prefix of every route.
pub const API_PREFIX: &str = "/v1";

/// `POST /v1/networks`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct NetworkCreate {
    pub name: String,
    /// `bridge` when absent.
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub subnet: Option<Ipv4Net>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default, rename = "IPRange")]
    pub ip_range: Option<Ipv4Net>,
    /// Addresses IPAM must never hand out, by name (`--aux-address NAME=IP`).
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default, rename = "MTU")]
    pub mtu: Option<u32>,
    /// Driver options (`-o KEY=VALUE`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Reply to `POST /v1/networks`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreated {
    pub id: String,
}

/// One IPAM pool of a network, as in `docker network inspect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    pub subnet: String,
    pub gateway: String,
    #[serde(rename = "IPRange", default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    pub driver: String,
    pub options: BTreeMap<String, String>,
    pub config: Vec<IpamConfig>,
}

/// One attached sandbox in `Containers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerAttachment {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// `IP/prefix`, as Docker prints it.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
    /// The sandbox-side interface, e.g. `eth0`.
    pub interface: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The CNI container ID of the attachment, if CNI made it.
    #[serde(
        default,
        rename = "ContainerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
}

/// `GET /v1/networks/{name}` and each element of `GET /v1/networks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    pub name: String,
    pub id: String,
    /// RFC 3339.
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    /// Keyed by sandbox id.
    pub containers: BTreeMap<String, ContainerAttachment>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Overlay networks: the hosts with endpoints on it (Docker's `Peers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<Peer>>,
}

/// A host taking part in an overlay network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Peer {
    pub name: String,
    #[serde(rename = "IP")]
    pub ip: String,
}

/// `POST /v1/networks/{name}/connect`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ConnectRequest {
    /// A name under /run/netns, or a path such as /proc/PID/ns/net.
    pub netns: String,
    #[serde(default, rename = "IPv4Address")]
    pub ipv4_address: Option<Ipv4Addr>,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `-p` specs in Docker's syntax, e.g. `127.0.0.1:8080:80/tcp`.
    #[serde(default)]
    pub ports: Vec<String>,
    /// Name of the interface inside the sandbox (default: the lowest free `ethN`).
    #[serde(default)]
    pub interface: Option<String>,
    /// MAC of the sandbox's interface (default: 02:42 and the IPv4 address, as Docker).
    #[serde(default)]
    pub mac_address: Option<String>,
    /// The CNI container ID making this attachment; with `interface` it names it for
    /// DEL, CHECK and GC.
    #[serde(default, rename = "ContainerID")]
    pub container_id: Option<String>,
}

/// Reply to connect.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Connected {
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub interface: String,
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    pub mac_address: String,
    /// The published ports, as `docker port` prints them.
    #[serde(default)]
    pub ports: Vec<String>,
    /// The sandbox's default gateway.
    #[serde(default)]
    pub gateway: String,
    /// The host side of the veth pair, and its MAC.
    #[serde(default)]
    pub host_interface: String,
    #[serde(default)]
    pub host_mac_address: String,
    /// The sandbox's netns file.
    #[serde(default)]
    pub sandbox: String,
}

/// `POST /v1/networks/{name}/disconnect`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct DisconnectRequest {
    /// The sandbox, as given to connect; or empty with `container_id`.
    #[serde(default)]
    pub netns: String,
    /// Selects a CNI attachment (with `interface`) instead of a netns.
    #[serde(default, rename = "ContainerID")]
    pub container_id: Option<String>,
    #[serde(default)]
    pub interface: Option<String>,
}

/// A CNI attachment: the container ID and the interface name inside the container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Attachment {
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub interface: String,
}

/// `POST /v1/networks/{name}/gc`: every CNI attachment of the network not listed goes.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct GcRequest {
    pub valid_attachments: Vec<Attachment>,
}

/// Reply to gc: the attachments removed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GcReport {
    pub removed: Vec<Attachment>,
}

/// Reply to `POST /v1/networks/prune`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneReport {
    pub networks_deleted: Vec<String>,
}

/// `POST /v1/sandboxes`
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SandboxCreate {
    pub name: String,
    /// `host` or `none` (Docker's network modes); absent: a fresh netns to connect later.
    #[serde(default)]
    pub network: Option<String>,
}

/// Each element of `GET /v1/sandboxes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SandboxInfo {
    pub name: String,
    pub id: String,
    /// The netns file.
    pub path: String,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
}

/// One counter row of `GET /v1/stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StatEntry {
    /// Network name; `-` for packets that matched no network.
    pub network: String,
    /// `delivery` or `drop`.
    pub kind: String,
    /// A `Delivery` or `DropReason` name from netd-common.
    pub reason: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Every error reply: a single line for humans.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorReply {
    pub message: String,
}

/// Each element of `GET /v1/ports`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PortInfo {
    pub sandbox: String,
    pub network: String,
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    pub container_ip: String,
}

/// Query of `GET /v1/ports`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortsQuery {
    pub netns: Option<String>,
}

/// An address and port, as conntrack shows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FlowEnds {
    pub src: String,
    pub dst: String,
}

/// Each element of `GET /v1/conntrack`: one translated flow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConntrackEntry {
    pub protocol: String,
    /// snat, dnat or hairpin.
    pub kind: String,
    pub original: FlowEnds,
    pub translated: FlowEnds,
    pub age_seconds: u64,
}
