//! What the cluster store holds, and where: every key lives under `/netd/v1/`.
//!
//! - `networks/<id>`: an overlay network ([`ClusterNetwork`]), permanent.
//! - `endpoints/<network id>/<ip>`: the holder of an address ([`EndpointRecord`]), attached
//!   to its host's lease. The key is the allocation: creating it is taking the address.
//! - `hosts/<vtep>`: a live daemon ([`HostRecord`]), attached to its lease.
//! - `epoch`: rewritten by every network create and remove, so a create that chose its
//!   name, VNI and subnet from one view of the networks commits only if that view is
//!   still current.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub const ROOT: &str = "/netd/v1/";
const NETWORKS: &str = "/netd/v1/networks/";
const ENDPOINTS: &str = "/netd/v1/endpoints/";
const HOSTS: &str = "/netd/v1/hosts/";
pub const EPOCH: &str = "/netd/v1/epoch";

/// An overlay network as every host sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterNetwork {
    pub id: String,
    pub name: String,
    pub vni: u32,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub ip_range: Option<Ipv4Net>,
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    pub internal: bool,
    pub icc: bool,
    pub masquerade: bool,
    /// Set only when the creator asked for one; otherwise each host uses its own default.
    pub mtu: Option<u32>,
    pub options: BTreeMap<String, String>,
    pub created: String,
}

/// Who holds an address of an overlay network, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub endpoint_id: String,
    pub mac: [u8; 6],
    /// The underlay address of the endpoint's host (its `--advertise-addr`).
    pub vtep: Ipv4Addr,
    pub host: String,
}

/// A daemon taking part in the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub vtep: Ipv4Addr,
}

/// A key of the store, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    Network(String),
    Endpoint {
        network_id: String,
        ip: Ipv4Addr,
    },
    Host(Ipv4Addr),
    /// `epoch`, or a key of a newer netd: nothing to act on.
    Other,
}

impl Key {
    pub fn parse(key: &[u8]) -> Key {
        let Ok(key) = std::str::from_utf8(key) else {
            return Key::Other;
        };
        if let Some(id) = key.strip_prefix(NETWORKS) {
            return Key::Network(id.to_owned());
        }
        if let Some(rest) = key.strip_prefix(ENDPOINTS) {
            if let Some((network_id, ip)) = rest.split_once('/') {
                if let Ok(ip) = ip.parse() {
                    return Key::Endpoint {
                        network_id: network_id.to_owned(),
                        ip,
                    };
                }
            }
        }
        match key.strip_prefix(HOSTS).map(str::parse) {
            Some(Ok(vtep)) => Key::Host(vtep),
            _ => Key::Other,
        }
    }
}

pub fn network_key(id: &str) -> String {
    format!("{NETWORKS}{id}")
}

pub fn endpoints_prefix(network_id: &str) -> String {
    format!("{ENDPOINTS}{network_id}/")
}

pub fn endpoint_key(network_id: &str, ip: Ipv4Addr) -> String {
    format!("{ENDPOINTS}{network_id}/{ip}")
}

pub fn host_key(vtep: Ipv4Addr) -> String {
    format!("{HOSTS}{vtep}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            Key::parse(endpoint_key("abc", ip).as_bytes()),
            Key::Endpoint {
                network_id: "abc".into(),
                ip
            }
        );
        assert_eq!(
            Key::parse(network_key("abc").as_bytes()),
            Key::Network("abc".into())
        );
        assert_eq!(Key::parse(host_key(ip).as_bytes()), Key::Host(ip));
        assert_eq!(Key::parse(EPOCH.as_bytes()), Key::Other);
        assert_eq!(Key::parse(b"/netd/v1/endpoints/abc/x"), Key::Other);
    }
}
