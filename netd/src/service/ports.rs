//! Published ports (`-p`) and the NAT table as the service sees them: choosing host ports,
//! the PUBLISHED entries of an endpoint, `port ls`, `conntrack ls`, and the periodic
//! upkeep (idle flows expire, the host's address list follows the kernel).
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use netd_common::{PublishKey, PublishTarget};

use super::{Error, Inner, Result, Service};
use crate::api::types::{ConntrackEntry, FlowEnds, PortInfo};
use crate::dataplane::Timeouts;
use crate::model::{gateway_mac, Endpoint, Network};
use crate::ports::{PortMapping, PortSpec, Protocol};

/// Where a port is picked when `-p` names none (Docker's default dynamic range start,
/// below the kernel's ephemeral ports' end and masquerading's 61000-65535).
const AUTO_PORTS: std::ops::RangeInclusive<u16> = 49153..=60999;

impl Service {
    /// `port ls [NETNS]`.
    pub async fn list_ports(&self, netns: Option<&str>) -> Result<Vec<PortInfo>> {
        let inner = self.inner.lock().await;
        let only = match netns {
            Some(arg) => {
                let path = super::endpoints::resolve_netns(arg)?;
                Some(
                    inner
                        .sandbox_at(&path)
                        .ok_or_else(|| {
                            Error::NotFound(format!("sandbox {arg} is not known to netd"))
                        })?
                        .id
                        .clone(),
                )
            }
            None => None,
        };
        let mut rows = Vec::new();
        for ep in inner.state.endpoints.values() {
            if only.as_ref().is_some_and(|id| *id != ep.sandbox_id) {
                continue;
            }
            let sandbox = inner.state.sandboxes.get(&ep.sandbox_id);
            let network = inner.state.networks.get(&ep.network_id);
            for m in &ep.ports {
                rows.push(PortInfo {
                    sandbox: sandbox.map(|s| s.name.clone()).unwrap_or_default(),
                    network: network.map(|n| n.name.clone()).unwrap_or_default(),
                    host_ip: m.host_ip.to_string(),
                    host_port: m.host_port,
                    container_port: m.container_port,
                    protocol: m.protocol.name().to_string(),
                    container_ip: ep.ip.to_string(),
                });
            }
        }
        rows.sort_by(|a, b| {
            (&a.sandbox, a.container_port, &a.protocol).cmp(&(
                &b.sandbox,
                b.container_port,
                &b.protocol,
            ))
        });
        Ok(rows)
    }

    /// `conntrack ls`.
    pub async fn conntrack(&self) -> Result<Vec<ConntrackEntry>> {
        let inner = self.inner.lock().await;
        let rows = inner.dataplane.nat().flows()?;
        Ok(rows
            .into_iter()
            .map(|r| ConntrackEntry {
                protocol: match r.proto {
                    netd_common::IPPROTO_TCP => "tcp".into(),
                    netd_common::IPPROTO_UDP => "udp".into(),
                    netd_common::IPPROTO_ICMP => "icmp".into(),
                    netd_common::IPPROTO_SCTP => "sctp".into(),
                    other => other.to_string(),
                },
                kind: r.kind.map(|k| k.name()).unwrap_or("?").to_string(),
                original: ends(r.original),
                translated: ends(r.translated),
                age_seconds: r.idle.as_secs(),
            })
            .collect())
    }

    /// Periodic upkeep: expires idle flows and refreshes the host's address list.
    pub async fn maintain_nat(&self, timeouts: &Timeouts) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let expired = inner.dataplane.expire_flows(timeouts)?;
        if expired > 0 {
            tracing::debug!(expired, "expired idle NAT entries");
        }
        inner.refresh_host_addresses().await
    }
}

fn ends((src, dst): (SocketAddrV4, SocketAddrV4)) -> FlowEnds {
    FlowEnds {
        src: src.to_string(),
        dst: dst.to_string(),
    }
}

impl Inner {
    /// Turns `-p` specs into mappings: refused on an internal network, when a host port is
    /// published already or held by a host socket; free ports picked where none is named.
    /// The ports of `replacing` (an endpoint whose ports these specs replace) count as free.
    pub(super) fn choose_ports(
        &self,
        specs: &[String],
        network: &Network,
        replacing: Option<&str>,
    ) -> Result<Vec<PortMapping>> {
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        if network.internal {
            return Err(Error::Invalid(format!(
                "network {} is internal: ports cannot be published from it",
                network.name
            )));
        }
        let parsed: Vec<PortSpec> = specs
            .iter()
            .map(|s| PortSpec::parse(s))
            .collect::<std::result::Result<_, _>>()
            .map_err(Error::Invalid)?;
        let mut published = Taken::default();
        let others = self
            .state
            .endpoints
            .values()
            .filter(|e| Some(e.id.as_str()) != replacing);
        for m in others.flat_map(|e| e.ports.iter()) {
            published.add(m);
        }
        let sockets = Taken::host_sockets();
        let mut chosen = Taken::default();
        let mut result = Vec::new();
        for spec in parsed {
            let container: Vec<u16> = spec.container_ports.clone().collect();
            let pairs: Vec<(Option<u16>, u16)> = match &spec.host_ports {
                None => container.iter().map(|&c| (None, c)).collect(),
                Some(host) if container.len() == 1 && host.start() != host.end() => {
                    vec![(None, container[0])]
                }
                Some(host) => host
                    .clone()
                    .map(Some)
                    .zip(container.iter().copied())
                    .collect(),
            };
            for (host_port, container_port) in pairs {
                let candidates = match (host_port, &spec.host_ports) {
                    (Some(p), _) => p..=p,
                    (None, Some(range)) => range.clone(),
                    (None, None) => AUTO_PORTS,
                };
                let mapping = |port| PortMapping {
                    host_ip: spec.host_ip,
                    host_port: port,
                    container_port,
                    protocol: spec.protocol,
                };
                let why = |m: &PortMapping| {
                    if published.conflicts(m) {
                        Some("is already published")
                    } else if chosen.conflicts(m) {
                        Some("is given twice")
                    } else if sockets.conflicts(m) {
                        Some("is in use by a host socket")
                    } else {
                        None
                    }
                };
                let Some(found) = candidates.clone().map(mapping).find(|m| why(m).is_none()) else {
                    return Err(Error::Conflict(match host_port {
                        Some(port) => {
                            let m = mapping(port);
                            format!(
                                "host port {}:{}/{} {}",
                                m.host_ip,
                                m.host_port,
                                m.protocol.name(),
                                why(&m).unwrap_or("is taken")
                            )
                        }
                        None => format!(
                            "no free host port in {}-{} for {container_port}/{}",
                            candidates.start(),
                            candidates.end(),
                            spec.protocol.name()
                        ),
                    }));
                };
                chosen.add(&found);
                result.push(found);
            }
        }
        Ok(result)
    }

    /// Points the host's address list (where published ports answer) at the kernel's.
    pub(super) async fn refresh_host_addresses(&mut self) -> anyhow::Result<()> {
        let addrs = self.netlink.host_addresses().await?;
        self.dataplane.set_host_addresses(&addrs)
    }
}

/// Host ports in use, by protocol and port, with the addresses they are bound to.
#[derive(Default)]
struct Taken(HashMap<(Protocol, u16), Vec<Ipv4Addr>>);

impl Taken {
    fn add(&mut self, m: &PortMapping) {
        self.0
            .entry((m.protocol, m.host_port))
            .or_default()
            .push(m.host_ip);
    }

    /// Same port and protocol, on the same address or with either side on 0.0.0.0.
    fn conflicts(&self, m: &PortMapping) -> bool {
        self.0.get(&(m.protocol, m.host_port)).is_some_and(|ips| {
            ips.iter()
                .any(|ip| *ip == m.host_ip || ip.is_unspecified() || m.host_ip.is_unspecified())
        })
    }

    /// The daemon netns's listening TCP and bound UDP sockets, from one read of
    /// /proc/thread-self/net/{tcp,udp} (a bind test per candidate port would cost three
    /// syscalls each, too slow for publishing thousands of ports at once).
    fn host_sockets() -> Taken {
        let mut taken = Taken::default();
        for (file, protocol, state) in [("tcp", Protocol::Tcp, "0A"), ("udp", Protocol::Udp, "07")]
        {
            let Ok(text) = std::fs::read_to_string(format!("/proc/thread-self/net/{file}")) else {
                continue;
            };
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(st)) = (fields.get(1), fields.get(3)) else {
                    continue;
                };
                if *st != state {
                    continue;
                }
                if let Some((ip, port)) = parse_proc_addr(local) {
                    taken.add(&PortMapping {
                        host_ip: ip,
                        host_port: port,
                        container_port: 0,
                        protocol,
                    });
                }
            }
        }
        taken
    }
}

/// `0100007F:1F90` (address in host byte order as hex, port in hex) -> 127.0.0.1:8080.
fn parse_proc_addr(text: &str) -> Option<(Ipv4Addr, u16)> {
    let (ip, port) = text.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some((Ipv4Addr::from(ip.to_ne_bytes()), port))
}

/// The PUBLISHED entries of an endpoint whose host veth is `ifindex`.
pub(super) fn published_entries(
    endpoint: &Endpoint,
    network: &Network,
    ifindex: u32,
) -> Vec<(PublishKey, PublishTarget)> {
    let Some(pool) = network.ipam.as_ref() else {
        return Vec::new();
    };
    endpoint
        .ports
        .iter()
        .map(|m| {
            (
                PublishKey {
                    host_ip: m.host_ip.octets(),
                    port: m.host_port.to_be(),
                    proto: m.protocol.number(),
                    _pad: 0,
                },
                PublishTarget {
                    ip: endpoint.ip.octets(),
                    port: m.container_port.to_be(),
                    _pad: 0,
                    ifindex,
                    mac: endpoint.mac,
                    gateway_mac: gateway_mac(pool.gateway),
                    gateway_ip: pool.gateway.octets(),
                    net_id: network.net_id,
                },
            )
        })
        .collect()
}
