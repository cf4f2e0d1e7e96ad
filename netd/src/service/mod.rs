//! The model's operations. Every front door (the API, which the CLI and the CNI plugin use,
//! and the Docker plugin) calls these. Each operation commits the desired state to the
//! store first and then makes
//! the kernel match; `reconcile` repairs whatever a crash left between the two.
mod address_pools;
mod attachments;
mod docker;
mod endpoints;
mod inspect;
mod networks;
mod overlay;
mod ports;
mod reconcile;
mod sandboxes;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use tokio::sync::Mutex;

use crate::cluster::Cluster;
use crate::dataplane::{Dataplane, NetworkEntry};
use crate::model::{Endpoint, Network};
use crate::netlink::Netlink;
use crate::store::{State, Store};

pub use docker::{DockerNetwork, Joined};
pub use networks::{OPT_ICC, OPT_MASQUERADE, OPT_MTU};

/// How an operation failed; the API maps each kind to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A store the operation needs (the cluster store) is out of reach: try again later.
    #[error("{0}")]
    Unavailable(String),
    /// `{:#}` keeps the whole cause chain on one line.
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Runs a state-changing operation in its own task: a front door's client that hangs up
/// must not cancel it between the store and the kernel (axum drops the handler's future
/// when it does).
pub async fn to_completion<T: Send + 'static>(
    op: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    match tokio::spawn(op).await {
        Ok(result) => result,
        Err(err) => Err(Error::Internal(anyhow::anyhow!("operation failed: {err}"))),
    }
}

/// The daemon's single owner of state. One lock serialises every change, so the store,
/// the kernel and the in-memory view move together.
pub struct Service {
    inner: Mutex<Inner>,
}

struct Inner {
    store: Store,
    /// The store's content, kept in memory for reads.
    state: State,
    netlink: Netlink,
    dataplane: Dataplane,
    /// Host-side ifindex of each endpoint; kernel facts, rebuilt by reconcile.
    ifindex: HashMap<String, u32>,
    /// Docker endpoints between CreateEndpoint and Join (or Leave and DeleteEndpoint).
    reservations: HashMap<String, docker::Reservation>,
    /// The cluster store, when the daemon is part of one (overlay networks).
    cluster: Option<Arc<Cluster>>,
    /// Other hosts' endpoints on overlay networks, by address, as the cluster store last said.
    remote: std::collections::BTreeMap<Ipv4Addr, overlay::RemoteHolder>,
}

/// Options of the daemon that shape the predefined networks.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Subnet of the predefined `bridge` network; a default pool when `None`.
    pub bridge_subnet: Option<Ipv4Net>,
}

impl Service {
    /// Loads the stored state and reconciles the kernel with it.
    pub async fn start(
        store: Store,
        netlink: Netlink,
        dataplane: Dataplane,
        cluster: Option<Arc<Cluster>>,
        settings: &Settings,
    ) -> anyhow::Result<Arc<Self>> {
        let state = store.load()?;
        let mut inner = Inner {
            store,
            state,
            netlink,
            dataplane,
            ifindex: HashMap::new(),
            reservations: HashMap::new(),
            cluster,
            remote: Default::default(),
        };
        inner.reconcile(settings).await?;
        Ok(Arc::new(Self {
            inner: Mutex::new(inner),
        }))
    }
}

impl Inner {
    /// A network by exact name, exact id, or unique id prefix, as Docker resolves them.
    fn network(&self, name_or_id: &str) -> Result<&Network> {
        let nets = || self.state.networks.values();
        if let Some(n) = nets().find(|n| n.name == name_or_id || n.id == name_or_id) {
            return Ok(n);
        }
        let mut by_prefix =
            nets().filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
        match (by_prefix.next(), by_prefix.next()) {
            (Some(n), None) => Ok(n),
            (Some(_), Some(_)) => Err(Error::Invalid(format!(
                "network {name_or_id} is ambiguous: several networks have ids starting with it"
            ))),
            _ => Err(Error::NotFound(format!("network {name_or_id} not found"))),
        }
    }

    fn endpoints_of<'a>(&'a self, network_id: &'a str) -> impl Iterator<Item = &'a Endpoint> {
        self.state
            .endpoints
            .values()
            .filter(move |e| e.network_id == network_id)
    }

    /// Addresses of the network's endpoints, realized or reserved by Docker.
    fn endpoint_ips(&self, network_id: &str) -> BTreeSet<Ipv4Addr> {
        let reserved = self
            .reservations
            .values()
            .filter(|r| r.network_id == network_id)
            .map(|r| r.ip);
        self.endpoints_of(network_id)
            .map(|e| e.ip)
            .chain(reserved)
            .collect()
    }

    /// Addresses a new endpoint of the network may not take: the endpoints' and those
    /// netd's IPAM driver gave Docker from the network's subnet.
    fn used_ips(&self, network_id: &str) -> BTreeSet<Ipv4Addr> {
        let mut used = self.endpoint_ips(network_id);
        let pool = self
            .state
            .networks
            .get(network_id)
            .and_then(|n| n.ipam.as_ref())
            .and_then(|p| self.state.address_pools.get(&p.subnet.to_string()));
        if let Some(pool) = pool {
            used.extend(&pool.allocated);
        }
        used
    }

    /// Subnets of netd's own networks.
    fn subnets(&self) -> Vec<Ipv4Net> {
        self.state
            .networks
            .values()
            .filter_map(|n| n.ipam.as_ref().map(|p| p.subnet))
            .collect()
    }

    /// Points the network's flood list at exactly its current endpoints.
    fn sync_members(&mut self, network: &Network) -> anyhow::Result<()> {
        let members: Vec<u32> = self
            .endpoints_of(&network.id)
            .filter_map(|e| self.ifindex.get(&e.id).copied())
            .collect();
        self.dataplane.set_members(network.net_id, &members)
    }
}

/// A bridge or overlay network as the dataplane sees it; `None` for drivers without one.
fn network_entry(network: &Network) -> Option<NetworkEntry> {
    let pool = network.ipam.as_ref()?;
    network.driver.switches().then(|| NetworkEntry {
        net_id: network.net_id,
        subnet: pool.subnet,
        gateway: pool.gateway,
        gateway_mac: crate::model::gateway_mac(pool.gateway),
        icc: network.icc,
        internal: network.internal,
        masquerade: network.masquerade,
    })
}
