//! Read-only views in Docker's shapes: inspect and stats.
use std::collections::BTreeMap;

use netd_common::{Delivery, DropReason};

use super::{Inner, Service, OPT_MTU};
use crate::api::types::{ContainerAttachment, Ipam, IpamConfig, NetworkInspect, StatEntry};
use crate::dataplane::StatKind;
use crate::model::{format_mac, Driver, Network};

/// Docker's overlay driver shows a network's VNI under this option.
const OPT_VXLAN_IDS: &str = "com.docker.network.driver.overlay.vxlanid_list";

impl Service {
    /// Dataplane counters by network and reason.
    pub async fn stats(&self) -> super::Result<Vec<StatEntry>> {
        let inner = self.inner.lock().await;
        let names: BTreeMap<u32, &str> = inner
            .state
            .networks
            .values()
            .filter(|n| n.net_id != 0)
            .map(|n| (n.net_id, n.name.as_str()))
            .collect();
        let mut rows: Vec<StatEntry> = inner
            .dataplane
            .stats()?
            .into_iter()
            .map(|row| {
                let (kind, reason) = match row.kind {
                    StatKind::Delivery(d) => ("delivery", Delivery::name(d)),
                    StatKind::Drop(r) => ("drop", DropReason::name(r)),
                };
                StatEntry {
                    network: names.get(&row.net_id).unwrap_or(&"-").to_string(),
                    kind: kind.into(),
                    reason: reason.into(),
                    packets: row.counter.packets,
                    bytes: row.counter.bytes,
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.network, &a.kind, &a.reason).cmp(&(&b.network, &b.kind, &b.reason))
        });
        // The NAT table's counters follow, as kind "nat" with the count under packets.
        let nat = inner.dataplane.nat().counters()?;
        for (reason, count) in [
            ("entries", nat.entries),
            ("created", nat.created),
            ("deleted", nat.deleted),
            ("evicted", nat.evicted),
            ("ports-exhausted", nat.ports_exhausted),
            ("sockets-rewritten", nat.sockets_rewritten),
        ] {
            rows.push(StatEntry {
                network: "-".into(),
                kind: "nat".into(),
                reason: reason.into(),
                packets: count,
                bytes: 0,
            });
        }
        Ok(rows)
    }
}

impl Inner {
    pub(super) fn inspect(&self, network: &Network) -> NetworkInspect {
        let config = network
            .ipam
            .iter()
            .map(|pool| IpamConfig {
                subnet: pool.subnet.to_string(),
                gateway: pool.gateway.to_string(),
                ip_range: pool.ip_range.map(|r| r.to_string()),
                aux_addresses: pool
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            })
            .collect();
        let prefix = network.ipam.as_ref().map_or(32, |p| p.subnet.prefix_len());
        // host and none have no endpoints: their sandboxes are listed as Docker lists
        // containers in those modes (no address).
        let by_mode = self
            .state
            .sandboxes
            .values()
            .filter(|s| s.mode == Some(network.driver))
            .map(|s| {
                (
                    s.id.clone(),
                    ContainerAttachment {
                        name: s.name.clone(),
                        endpoint_id: s.id.clone(),
                        mac_address: String::new(),
                        ipv4_address: String::new(),
                        ipv6_address: String::new(),
                        interface: String::new(),
                        aliases: Vec::new(),
                        container_id: None,
                    },
                )
            });
        let containers = self
            .endpoints_of(&network.id)
            .filter_map(|e| {
                let sandbox = self.state.sandboxes.get(&e.sandbox_id)?;
                Some((
                    sandbox.id.clone(),
                    ContainerAttachment {
                        name: sandbox.name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: format_mac(e.mac),
                        ipv4_address: format!("{}/{prefix}", e.ip),
                        ipv6_address: String::new(),
                        interface: e.sandbox_ifname.clone().unwrap_or_default(),
                        aliases: e.aliases.clone(),
                        container_id: e.container_id.clone(),
                    },
                ))
            })
            .chain(by_mode)
            .collect();
        let mut options = network.options.clone();
        if let Some(vni) = network.vni {
            // The MTU is each host's (underlay minus the VXLAN overhead unless chosen): show it.
            options.insert(OPT_VXLAN_IDS.into(), vni.to_string());
            options.insert(OPT_MTU.into(), network.mtu.to_string());
        }
        NetworkInspect {
            name: network.name.clone(),
            id: network.id.clone(),
            created: network.created.clone(),
            scope: match network.driver {
                Driver::Overlay => "global",
                _ => "local",
            }
            .into(),
            driver: network.driver.name().into(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".into(),
                options: BTreeMap::new(),
                config,
            },
            internal: network.internal,
            attachable: network.driver == Driver::Overlay,
            ingress: false,
            containers,
            options,
            labels: BTreeMap::new(),
            peers: self.peers(network),
        }
    }
}
