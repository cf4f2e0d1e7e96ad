//! Network create, remove and prune.
use std::collections::BTreeMap;

use netd_common::MAX_NETWORKS;

use super::{network_entry, Error, Inner, Result, Service};
use crate::api::types::{NetworkCreate, NetworkInspect, PruneReport};
use crate::crashpoint;
use crate::ipam::{self, PoolRequest};
use crate::model::{new_id, Driver, Network};
use crate::store::Change;

/// The `-o` keys netd understands, as Docker's bridge driver names them.
pub const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub const OPT_MASQUERADE: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";
const DEFAULT_MTU: u32 = 1500;

impl Service {
    pub async fn create_network(&self, req: NetworkCreate) -> Result<Network> {
        self.inner
            .lock()
            .await
            .create_network(req, Origin::User)
            .await
    }

    pub async fn remove_network(&self, name: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let network = inner.network(name)?.clone();
        if network.docker || network.docker_id.is_some() {
            return Err(Error::Conflict(format!(
                "network {} is in use by Docker: remove it with `docker network rm` first",
                network.name
            )));
        }
        inner.remove_network(&network).await
    }

    /// Removes every user network without endpoints.
    pub async fn prune_networks(&self) -> Result<PruneReport> {
        let mut inner = self.inner.lock().await;
        let unused: Vec<Network> = inner
            .state
            .networks
            .values()
            .filter(|n| {
                !n.predefined
                    && !n.docker
                    && n.docker_id.is_none()
                    && inner.endpoints_of(&n.id).next().is_none()
            })
            .cloned()
            .collect();
        let mut report = PruneReport::default();
        for network in unused {
            inner.remove_network(&network).await?;
            report.networks_deleted.push(network.name);
        }
        Ok(report)
    }

    pub async fn list_networks(&self) -> Vec<NetworkInspect> {
        let inner = self.inner.lock().await;
        let mut nets: Vec<&Network> = inner.state.networks.values().collect();
        nets.sort_by(|a, b| a.name.cmp(&b.name));
        nets.into_iter().map(|n| inner.inspect(n)).collect()
    }

    pub async fn inspect_network(&self, name: &str) -> Result<NetworkInspect> {
        let inner = self.inner.lock().await;
        Ok(inner.inspect(inner.network(name)?))
    }
}

/// Docker's rule for names: a letter or digit, then letters, digits, `_`, `.` or `-`.
pub(super) fn check_name(kind: &str, name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid {kind} name {name:?}: use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        )))
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    value.parse().map_err(|_| {
        Error::Invalid(format!(
            "invalid option {key}={value}: expected true or false"
        ))
    })
}

/// The options that shape a bridge or overlay network, with Docker's defaults.
pub(super) struct BridgeOptions {
    pub icc: bool,
    pub masquerade: bool,
    /// `--mtu` or `-o ...mtu`; `None`: the driver's default.
    pub mtu: Option<u32>,
}

pub(super) fn bridge_options(req: &NetworkCreate) -> Result<BridgeOptions> {
    let mut opts = BridgeOptions {
        icc: true,
        masquerade: true,
        mtu: req.mtu,
    };
    for (key, value) in &req.options {
        match key.as_str() {
            OPT_ICC => opts.icc = parse_bool(key, value)?,
            OPT_MASQUERADE => opts.masquerade = parse_bool(key, value)?,
            OPT_MTU => {
                opts.mtu = Some(value.parse().map_err(|_| {
                    Error::Invalid(format!("invalid option {key}={value}: expected a number"))
                })?)
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "unknown option {key}; accepted: {OPT_ICC}, {OPT_MASQUERADE}, {OPT_MTU}"
                )))
            }
        }
    }
    if let Some(mtu) = opts.mtu.filter(|mtu| !(68..=65535).contains(mtu)) {
        return Err(Error::Invalid(format!(
            "invalid mtu {mtu}: must be between 68 and 65535"
        )));
    }
    Ok(opts)
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Who creates a network.
pub(super) enum Origin {
    /// A user of the API.
    User,
    /// The daemon, at first start: bridge, host and none.
    Predefined,
    /// Docker, through the plugin protocol, under Docker's network id.
    Docker { id: String },
}

impl Inner {
    pub(super) async fn create_network(
        &mut self,
        req: NetworkCreate,
        origin: Origin,
    ) -> Result<Network> {
        let predefined = matches!(origin, Origin::Predefined);
        check_name("network", &req.name)?;
        if self.state.networks.values().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let driver = match req.driver.as_deref().unwrap_or("bridge") {
            "bridge" => Driver::Bridge,
            "host" if predefined => Driver::Host,
            "null" if predefined => Driver::Null,
            d @ ("host" | "null") => {
                return Err(Error::Conflict(format!(
                    "only one instance of \"{d}\" network is allowed"
                )))
            }
            "overlay" if !predefined && !matches!(origin, Origin::Docker { .. }) => {
                return self.create_overlay_network(req).await
            }
            other => {
                return Err(Error::Invalid(format!(
                    "driver {other} is not supported: netd creates bridge and overlay networks (host and none are predefined)"
                )))
            }
        };
        let opts = bridge_options(&req)?;
        let (ipam, net_id) = if driver == Driver::Bridge {
            let host_prefixes = self.netlink.host_prefixes().await?;
            let pool_req = PoolRequest {
                subnet: req.subnet,
                gateway: req.gateway,
                ip_range: req.ip_range,
                aux_addresses: req.aux_addresses.clone(),
            };
            // A pool netd's IPAM driver gave Docker is taken, except for Docker's network on it.
            let mut taken = self.subnets();
            if !matches!(origin, Origin::Docker { .. }) {
                taken.extend(self.state.address_pools.values().map(|p| p.subnet));
            }
            let pool =
                ipam::plan_pool(&pool_req, &taken, &host_prefixes).map_err(Error::Invalid)?;
            (Some(pool), self.free_net_id()?)
        } else {
            (None, 0)
        };
        let (id, docker) = match origin {
            Origin::Docker { id } => (id, true),
            _ => (new_id(), false),
        };
        let network = Network {
            id,
            docker,
            docker_id: None,
            name: req.name,
            driver,
            net_id,
            created: now_rfc3339(),
            ipam,
            internal: req.internal,
            icc: opts.icc,
            masquerade: opts.masquerade,
            mtu: opts.mtu.unwrap_or(DEFAULT_MTU),
            options: req.options,
            predefined,
            vni: None,
        };
        self.store.commit(&[Change::PutNetwork(&network)])?;
        self.state
            .networks
            .insert(network.id.clone(), network.clone());
        crashpoint::hit("network-create:after-store");
        if let Err(err) = self.apply_network(&network).await {
            // Undo: the caller gets an error, so nothing of the network may remain.
            let _ = self.unapply_network(&network).await;
            self.store.commit(&[Change::DeleteNetwork(&network.id)])?;
            self.state.networks.remove(&network.id);
            return Err(err.into());
        }
        tracing::info!(name = network.name, id = network.id, "network created");
        Ok(network)
    }

    pub(super) fn free_net_id(&self) -> Result<u32> {
        let used: std::collections::BTreeSet<u32> =
            self.state.networks.values().map(|n| n.net_id).collect();
        (1..MAX_NETWORKS)
            .find(|id| !used.contains(id))
            .ok_or_else(|| {
                Error::Conflict(format!("too many networks (at most {})", MAX_NETWORKS - 1))
            })
    }

    /// Gateway address on the host, network in the maps.
    pub(super) async fn apply_network(&mut self, network: &Network) -> anyhow::Result<()> {
        if let Some(entry) = network_entry(network) {
            self.netlink.add_gateway(entry.gateway).await?;
            self.dataplane.put_network(&entry)?;
            if let Some(vni) = network.vni {
                self.dataplane.put_vni(vni, network.net_id)?;
            }
            // Published ports answer on the new gateway too (hairpin).
            self.refresh_host_addresses().await?;
        }
        Ok(())
    }

    pub(super) async fn unapply_network(&mut self, network: &Network) -> anyhow::Result<()> {
        if let Some(entry) = network_entry(network) {
            if let Some(vni) = network.vni {
                self.dataplane.remove_vni(vni)?;
            }
            self.dataplane.remove_network(&entry)?;
            self.netlink.remove_gateway(entry.gateway).await?;
            self.refresh_host_addresses().await?;
        }
        Ok(())
    }

    pub(super) async fn remove_network(&mut self, network: &Network) -> Result<()> {
        if network.predefined {
            return Err(Error::Invalid(format!(
                "{} is a pre-defined network and cannot be removed",
                network.name
            )));
        }
        if network.driver == Driver::Overlay {
            return self.remove_overlay_network(network).await;
        }
        if self.endpoints_of(&network.id).next().is_some() {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                network.name, network.id
            )));
        }
        self.store.commit(&[Change::DeleteNetwork(&network.id)])?;
        self.state.networks.remove(&network.id);
        crashpoint::hit("network-rm:after-store");
        self.unapply_network(network).await?;
        tracing::info!(name = network.name, "network removed");
        Ok(())
    }

    /// bridge, host and none, created at first start like Docker's.
    pub(super) async fn ensure_predefined(
        &mut self,
        bridge_subnet: Option<ipnet::Ipv4Net>,
    ) -> anyhow::Result<()> {
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if self.state.networks.values().any(|n| n.name == name) {
                continue;
            }
            let req = NetworkCreate {
                name: name.into(),
                driver: Some(driver.into()),
                subnet: if name == "bridge" {
                    bridge_subnet
                } else {
                    None
                },
                options: BTreeMap::new(),
                ..Default::default()
            };
            self.create_network(req, Origin::Predefined)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create predefined network {name}: {e}"))?;
        }
        Ok(())
    }
}
