//! Overlay networks: the cluster store's records made local. A network lives in the
//! cluster store; each host keeps a copy in its own store (with a host-local dataplane id),
//! so that its dataplane and endpoints survive restarts while the cluster store is away.
//! Other hosts' endpoints are kept in memory and in the dataplane's remote-endpoint map.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use netd_common::RemoteEndpoint;

use super::networks::{bridge_options, now_rfc3339};
use super::{Error, Inner, Result, Service};
use crate::api::types::{NetworkCreate, Peer};
use crate::cluster::{Change, Claim, Cluster, ClusterNetwork, EndpointRecord, Unreachable};
use crate::ipam::{self, PoolRequest};
use crate::model::{endpoint_mac, new_id, Driver, Endpoint, IpamPool, Network};
use crate::store::Change as StoreChange;

/// The first VXLAN network identifier netd hands out, as Docker's overlay driver.
const FIRST_VNI: u32 = 256;
/// VNIs are 24 bits.
const LAST_VNI: u32 = (1 << 24) - 1;
/// Where automatic overlay subnets come from: 10.0.0.0/24, 10.0.1.0/24, ...
const OVERLAY_POOL: &str = "10.0.0.0/8";
const OVERLAY_SUBNET_PREFIX: u8 = 24;
/// Attempts at a transaction that lost a race with another host.
const ATTEMPTS: usize = 8;

/// Another host's endpoint, as this host knows it.
#[derive(Clone, Debug)]
pub(super) struct RemoteHolder {
    network_id: String,
    record: EndpointRecord,
}

impl From<Unreachable> for Error {
    fn from(err: Unreachable) -> Self {
        Error::Unavailable(err.to_string())
    }
}

impl Service {
    /// Claims this host's endpoints again under the current lease, drops records of this
    /// host that no endpoint matches (a crash between store and cluster), and sets the
    /// local copies and the dataplane to the cluster's current view. Returns the revision
    /// that view was read at.
    pub async fn resync_cluster(&self) -> anyhow::Result<i64> {
        let mut inner = self.inner.lock().await;
        let cluster = inner.cluster()?.clone();
        let snapshot = cluster.snapshot().await?;
        let listed: BTreeSet<String> = snapshot.networks.iter().map(|n| n.id.clone()).collect();
        for network in &snapshot.networks {
            inner.adopt_cluster_network(network).await?;
        }
        let stale: Vec<Network> = inner
            .state
            .networks
            .values()
            .filter(|n| n.driver == Driver::Overlay && !listed.contains(&n.id))
            .cloned()
            .collect();
        for network in stale {
            inner.forget_cluster_network(&network.id).await?;
        }

        let own: Vec<Endpoint> = inner
            .state
            .endpoints
            .values()
            .filter(|e| inner.is_overlay(&e.network_id))
            .cloned()
            .collect();
        for endpoint in &own {
            let record = cluster.record(&endpoint.id, endpoint.mac);
            match cluster
                .claim(&endpoint.network_id, endpoint.ip, &record)
                .await?
            {
                Claim::Claimed => {}
                Claim::Taken(other) => tracing::warn!(
                    ip = %endpoint.ip,
                    holder = other.host,
                    "address of a local endpoint was taken while this host was away"
                ),
                Claim::NoNetwork => {}
            }
        }
        let mut remote = BTreeMap::new();
        for (network_id, ip, record) in snapshot.endpoints {
            if record.vtep != cluster.settings.vtep {
                remote.insert(ip, RemoteHolder { network_id, record });
            } else if !own.iter().any(|e| e.id == record.endpoint_id) {
                tracing::info!(%ip, "releasing an address no local endpoint holds");
                cluster
                    .release(&network_id, ip, &record.endpoint_id)
                    .await?;
            }
        }
        inner.set_remotes(remote)?;
        Ok(snapshot.revision)
    }

    /// Applies one change seen on the cluster store's watch.
    pub async fn apply_cluster_change(&self, change: Change) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        let vtep = inner.cluster()?.settings.vtep;
        match change {
            Change::Network(network) => inner.adopt_cluster_network(&network).await,
            Change::NetworkRemoved(id) => inner.forget_cluster_network(&id).await,
            Change::Endpoint { record, .. } if record.vtep == vtep => Ok(()),
            Change::Endpoint {
                network_id,
                ip,
                record,
            } => inner.put_remote(ip, RemoteHolder { network_id, record }),
            Change::EndpointRemoved { network_id, ip } => {
                if inner
                    .remote
                    .get(&ip)
                    .is_some_and(|r| r.network_id == network_id)
                {
                    inner.remote.remove(&ip);
                    inner.dataplane.remove_remote_endpoint(ip)?;
                }
                Ok(())
            }
        }
    }
}

impl Inner {
    pub(super) fn cluster(&self) -> Result<&Arc<Cluster>> {
        self.cluster.as_ref().ok_or_else(|| {
            Error::Invalid(
                "overlay networks need a cluster store: start netd daemon with --cluster-store etcd://HOST:PORT --advertise-addr IP".into(),
            )
        })
    }

    fn is_overlay(&self, network_id: &str) -> bool {
        self.state
            .networks
            .get(network_id)
            .is_some_and(|n| n.driver == Driver::Overlay)
    }

    /// `netd network create -d overlay`: chosen from the cluster's view and written there in
    /// one transaction, then made local at once (the watch brings it to the other hosts).
    pub(super) async fn create_overlay_network(&mut self, req: NetworkCreate) -> Result<Network> {
        let cluster = self.cluster()?.clone();
        let opts = bridge_options(&req)?;
        let host_prefixes = self.netlink.host_prefixes().await?;
        for _ in 0..ATTEMPTS {
            let (networks, seen) = cluster.networks().await?;
            let local_name = self.state.networks.values().any(|n| n.name == req.name);
            if local_name || networks.iter().any(|n| n.name == req.name) {
                return Err(Error::Conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            let mut taken: Vec<Ipv4Net> = networks.iter().map(|n| n.subnet).collect();
            taken.extend(self.subnets());
            let pool = overlay_pool(&req, &taken, &host_prefixes)?;
            let record = ClusterNetwork {
                id: new_id(),
                name: req.name.clone(),
                vni: free_vni(&networks)?,
                subnet: pool.subnet,
                gateway: pool.gateway,
                ip_range: pool.ip_range,
                aux_addresses: pool.aux_addresses,
                internal: req.internal,
                icc: opts.icc,
                masquerade: opts.masquerade,
                mtu: opts.mtu,
                options: req.options.clone(),
                created: now_rfc3339(),
            };
            if cluster.create_network(&record, seen).await? {
                self.adopt_cluster_network(&record).await?;
                tracing::info!(
                    name = record.name,
                    vni = record.vni,
                    "overlay network created"
                );
                return Ok(self.state.networks[&record.id].clone());
            }
        }
        Err(Error::Unavailable(
            "cluster store busy: networks kept changing, try again".into(),
        ))
    }

    /// `netd network rm` of an overlay network: refused while any host has an endpoint on it.
    pub(super) async fn remove_overlay_network(&mut self, network: &Network) -> Result<()> {
        if self.endpoints_of(&network.id).next().is_some()
            || !self.cluster()?.remove_network(&network.id).await?
        {
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints",
                network.name, network.id
            )));
        }
        self.forget_cluster_network(&network.id).await?;
        Ok(())
    }

    /// The local copy of a cluster network: created if missing, with a host-local dataplane id.
    async fn adopt_cluster_network(&mut self, record: &ClusterNetwork) -> anyhow::Result<()> {
        if self.state.networks.contains_key(&record.id) {
            return Ok(());
        }
        if let Some(clash) = self.state.networks.values().find(|n| n.name == record.name) {
            tracing::warn!(
                name = clash.name,
                "cluster network not adopted: a local network has its name"
            );
            return Ok(());
        }
        let overlay_mtu = self.cluster()?.settings.overlay_mtu;
        let network = Network {
            id: record.id.clone(),
            name: record.name.clone(),
            driver: Driver::Overlay,
            net_id: self.free_net_id()?,
            created: record.created.clone(),
            ipam: Some(IpamPool {
                subnet: record.subnet,
                gateway: record.gateway,
                ip_range: record.ip_range,
                aux_addresses: record.aux_addresses.clone(),
            }),
            internal: record.internal,
            icc: record.icc,
            masquerade: record.masquerade,
            // Never more than this host's underlay carries with the VXLAN headers.
            mtu: record.mtu.map_or(overlay_mtu, |mtu| mtu.min(overlay_mtu)),
            options: record.options.clone(),
            predefined: false,
            docker: false,
            docker_id: None,
            vni: Some(record.vni),
        };
        self.store.commit(&[StoreChange::PutNetwork(&network)])?;
        self.state
            .networks
            .insert(network.id.clone(), network.clone());
        if let Err(err) = self.apply_network(&network).await {
            let _ = self.unapply_network(&network).await;
            self.store
                .commit(&[StoreChange::DeleteNetwork(&network.id)])?;
            self.state.networks.remove(&network.id);
            return Err(err);
        }
        Ok(())
    }

    /// Drops the local copy of a network the cluster no longer has. One with local
    /// endpoints stays (they keep working on this host) until they are gone.
    async fn forget_cluster_network(&mut self, id: &str) -> anyhow::Result<()> {
        let Some(network) = self.state.networks.get(id).cloned() else {
            return Ok(());
        };
        if self.endpoints_of(id).next().is_some() {
            tracing::warn!(
                name = network.name,
                "overlay network removed from the cluster while it has local endpoints"
            );
            return Ok(());
        }
        let gone: Vec<Ipv4Addr> = self
            .remote
            .iter()
            .filter(|(_, r)| r.network_id == id)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in gone {
            self.remote.remove(&ip);
            self.dataplane.remove_remote_endpoint(ip)?;
        }
        self.store.commit(&[StoreChange::DeleteNetwork(id)])?;
        self.state.networks.remove(id);
        self.unapply_network(&network).await?;
        tracing::info!(name = network.name, "overlay network removed");
        Ok(())
    }

    /// Takes an address of an overlay network in the cluster store for a new endpoint:
    /// `requested`, or the lowest one nobody holds.
    pub(super) async fn claim_address(
        &mut self,
        network: &Network,
        requested: Option<Ipv4Addr>,
        endpoint_id: &str,
        mac: Option<[u8; 6]>,
    ) -> Result<(Ipv4Addr, [u8; 6])> {
        let cluster = self.cluster()?.clone();
        let pool = network.ipam.as_ref().expect("overlay networks have IPAM");
        for _ in 0..ATTEMPTS {
            let mut used: BTreeSet<Ipv4Addr> =
                cluster.holders(&network.id).await?.into_keys().collect();
            used.extend(self.endpoint_ips(&network.id));
            let ip = match requested {
                Some(ip) => {
                    ipam::check_static(pool, ip, &used).map_err(Error::Invalid)?;
                    ip
                }
                None => ipam::allocate(pool, &used).map_err(Error::Conflict)?,
            };
            let mac = mac.unwrap_or_else(|| endpoint_mac(ip));
            match cluster
                .claim(&network.id, ip, &cluster.record(endpoint_id, mac))
                .await?
            {
                Claim::Claimed => return Ok((ip, mac)),
                Claim::NoNetwork => {
                    return Err(Error::NotFound(format!(
                        "network {} was removed from the cluster",
                        network.name
                    )))
                }
                Claim::Taken(holder) if requested.is_some() => {
                    return Err(Error::Conflict(format!(
                        "address {ip} is already in use on network {} (host {})",
                        network.name, holder.host
                    )))
                }
                // Another host took it between our read and our transaction: next one.
                Claim::Taken(_) => {}
            }
        }
        Err(Error::Unavailable(format!(
            "cluster store busy: addresses of {} kept being taken, try again",
            network.name
        )))
    }

    /// Gives an overlay endpoint's address back to the cluster.
    pub(super) async fn release_address(&self, endpoint: &Endpoint) -> Result<()> {
        match self.state.networks.get(&endpoint.network_id) {
            Some(network) => {
                self.release_address_of(network, endpoint.ip, &endpoint.id)
                    .await
            }
            None => Ok(()),
        }
    }

    pub(super) async fn release_address_of(
        &self,
        network: &Network,
        ip: Ipv4Addr,
        endpoint_id: &str,
    ) -> Result<()> {
        if network.driver == Driver::Overlay {
            self.cluster()?
                .release(&network.id, ip, endpoint_id)
                .await?;
        }
        Ok(())
    }

    fn put_remote(&mut self, ip: Ipv4Addr, holder: RemoteHolder) -> anyhow::Result<()> {
        let entry = self
            .state
            .networks
            .get(&holder.network_id)
            .and_then(|network| self.remote_entry(network, &holder));
        let Some(entry) = entry else {
            return Ok(());
        };
        self.dataplane.put_remote_endpoint(ip, &entry)?;
        self.remote.insert(ip, holder);
        Ok(())
    }

    fn remote_entry(&self, network: &Network, holder: &RemoteHolder) -> Option<RemoteEndpoint> {
        Some(RemoteEndpoint {
            vtep: holder.record.vtep.octets(),
            vni: network.vni?,
            net_id: network.net_id,
            mac: holder.record.mac,
            _pad: [0; 2],
        })
    }

    /// Makes the remote-endpoint map hold exactly `remote` (of networks known here).
    fn set_remotes(&mut self, remote: BTreeMap<Ipv4Addr, RemoteHolder>) -> anyhow::Result<()> {
        let wanted: BTreeMap<Ipv4Addr, RemoteEndpoint> = remote
            .iter()
            .filter_map(|(ip, holder)| {
                let network = self.state.networks.get(&holder.network_id)?;
                Some((*ip, self.remote_entry(network, holder)?))
            })
            .collect();
        for (ip, _) in self.dataplane.remote_endpoints()? {
            if !wanted.contains_key(&ip) {
                self.dataplane.remove_remote_endpoint(ip)?;
            }
        }
        for (ip, entry) in &wanted {
            self.dataplane.put_remote_endpoint(*ip, entry)?;
        }
        self.remote = remote
            .into_iter()
            .filter(|(ip, _)| wanted.contains_key(ip))
            .collect();
        Ok(())
    }

    /// The hosts holding endpoints of an overlay network, this one included.
    pub(super) fn peers(&self, network: &Network) -> Option<Vec<Peer>> {
        let cluster = self.cluster.as_ref().filter(|_| network.vni.is_some())?;
        let mut peers: BTreeMap<Ipv4Addr, String> = self
            .remote
            .values()
            .filter(|r| r.network_id == network.id)
            .map(|r| (r.record.vtep, r.record.host.clone()))
            .collect();
        if self.endpoints_of(&network.id).next().is_some() {
            peers.insert(cluster.settings.vtep, cluster.host.clone());
        }
        Some(
            peers
                .into_iter()
                .map(|(ip, name)| Peer {
                    name,
                    ip: ip.to_string(),
                })
                .collect(),
        )
    }
}

/// The pool of a new overlay network: the requested subnet, or the first free /24 of
/// 10.0.0.0/8 (host prefixes avoided, as for automatic bridge subnets).
fn overlay_pool(
    req: &NetworkCreate,
    taken: &[Ipv4Net],
    host_prefixes: &[Ipv4Net],
) -> Result<IpamPool> {
    let pool_req = |subnet| PoolRequest {
        subnet,
        gateway: req.gateway,
        ip_range: req.ip_range,
        aux_addresses: req.aux_addresses.clone(),
    };
    if req.subnet.is_some() {
        return ipam::plan_pool(&pool_req(req.subnet), taken, host_prefixes)
            .map_err(Error::Invalid);
    }
    if req.gateway.is_some() || req.ip_range.is_some() {
        return Err(Error::Invalid(
            "--gateway and --ip-range need --subnet".into(),
        ));
    }
    let avoid: Vec<Ipv4Net> = taken.iter().chain(host_prefixes).copied().collect();
    let pool: Ipv4Net = OVERLAY_POOL.parse().expect("valid pool");
    pool.subnets(OVERLAY_SUBNET_PREFIX)
        .expect("a /24 fits in a /8")
        .find_map(|subnet| ipam::plan_pool(&pool_req(Some(subnet)), &avoid, &[]).ok())
        .ok_or_else(|| {
            Error::Invalid("could not find an available, non-overlapping overlay subnet".into())
        })
}

fn free_vni(networks: &[ClusterNetwork]) -> Result<u32> {
    let used: BTreeSet<u32> = networks.iter().map(|n| n.vni).collect();
    (FIRST_VNI..=LAST_VNI)
        .find(|vni| !used.contains(vni))
        .ok_or_else(|| Error::Conflict("no free VXLAN network identifier".into()))
}
