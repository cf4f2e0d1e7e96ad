//! Docker's remote network driver, as operations on the model. Docker drives an endpoint in
//! steps: CreateEndpoint (address known), Join (sandbox known), ProgramExternalConnectivity
//! (published ports), Leave, DeleteEndpoint. netd reserves the address at the first step
//! and realizes the endpoint at Join, when there is a sandbox to record.
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;

use super::endpoints::parse_mac;
use super::networks::Origin;
use super::ports::published_entries;
use super::sandboxes::UNKNOWN_IDENTITY;
use super::{Error, Inner, Result, Service};
use crate::api::types::NetworkCreate;
use crate::model::{
    endpoint_mac, host_ifname, new_id, Driver, Endpoint, EndpointState, Network, Sandbox,
};
use crate::ports::PortMapping;
use crate::store::Change;

/// A network as Docker's CreateNetwork describes it.
#[derive(Clone, Debug)]
pub struct DockerNetwork {
    pub id: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
    pub internal: bool,
    /// The `-o` options of `docker network create`.
    pub options: BTreeMap<String, String>,
    /// `-o netd.network=NAME`: Docker uses this existing netd network instead of a new one.
    pub adopt: Option<String>,
}

/// A Docker endpoint that is not joined to a sandbox: its address is held, nothing else.
/// Kept in memory only: Docker joins right after creating, and deletes right after leaving.
#[derive(Clone, Debug)]
pub(super) struct Reservation {
    pub network_id: String,
    pub ip: Ipv4Addr,
    pub mac: [u8; 6],
}

/// What Join answers: the interface Docker moves into the sandbox, and the gateway.
#[derive(Clone, Debug)]
pub struct Joined {
    pub ifname: String,
    /// `None` on an internal network: no default route through it.
    pub gateway: Option<Ipv4Addr>,
}

/// The veth end Docker moves into the sandbox: the host end's name plus `c` (15 bytes).
fn peer_ifname(endpoint_id: &str) -> String {
    format!("{}c", host_ifname(endpoint_id))
}

/// Docker's ids are 64 hex digits; netd names links after them.
fn check_id(kind: &str, id: &str) -> Result<()> {
    if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid {kind} ID {id:?}: expected 64 hex digits"
        )))
    }
}

impl Service {
    pub async fn docker_create_network(&self, req: DockerNetwork) -> Result<()> {
        check_id("network", &req.id)?;
        let mut inner = self.inner.lock().await;
        if let Some(name) = &req.adopt {
            return inner.adopt(name, &req);
        }
        if let Some(existing) = inner.state.networks.get(&req.id) {
            // Docker may repeat a create it did not see answered.
            let same = existing.ipam.as_ref().map(|p| p.subnet) == Some(req.subnet);
            return if same {
                Ok(())
            } else {
                Err(Error::Conflict(format!(
                    "network {} already exists with another subnet",
                    req.id
                )))
            };
        }
        let create = NetworkCreate {
            // Docker does not tell its name; the daemon asks Docker for it afterwards.
            name: req.id[..12].to_string(),
            driver: Some("bridge".into()),
            subnet: Some(req.subnet),
            gateway: Some(req.gateway),
            aux_addresses: req.aux_addresses,
            internal: req.internal,
            options: req.options,
            ..Default::default()
        };
        inner
            .create_network(create, Origin::Docker { id: req.id })
            .await?;
        Ok(())
    }

    /// Gives a Docker network Docker's name, unless a netd network has that name already.
    /// An adopted network keeps netd's name.
    pub async fn docker_name_network(&self, id: &str, name: &str) -> Result<()> {
        super::networks::check_name("network", name)?;
        let mut inner = self.inner.lock().await;
        if inner
            .state
            .networks
            .values()
            .any(|n| n.docker_id.as_deref() == Some(id))
        {
            return Ok(());
        }
        if inner.state.networks.values().any(|n| n.name == name) {
            return Err(Error::Conflict(format!(
                "network name {name} is taken: Docker network {id} keeps its short id as name"
            )));
        }
        let mut network = inner
            .state
            .networks
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("network {id} not found")))?;
        network.name = name.to_string();
        inner.store.commit(&[Change::PutNetwork(&network)])?;
        inner.state.networks.insert(network.id.clone(), network);
        Ok(())
    }

    /// Docker networks still named by their short id: Docker was out of reach when they were
    /// created.
    pub async fn docker_networks_without_name(&self) -> Vec<String> {
        let inner = self.inner.lock().await;
        inner
            .state
            .networks
            .values()
            .filter(|n| n.docker && n.name == n.id[..12])
            .map(|n| n.id.clone())
            .collect()
    }

    /// Deleting a network netd does not have succeeds: Docker retries deletes. An adopted
    /// network stays in netd; Docker just stops using it.
    pub async fn docker_delete_network(&self, id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let Some(mut network) = inner.docker_network(id).ok().cloned() else {
            return Ok(());
        };
        if network.docker {
            return inner.remove_network(&network).await;
        }
        network.docker_id = None;
        inner.store.commit(&[Change::PutNetwork(&network)])?;
        tracing::info!(name = network.name, "Docker no longer uses the network");
        inner.state.networks.insert(network.id.clone(), network);
        Ok(())
    }

    /// Holds the endpoint's address (Docker's IPAM chose it; netd picks one when Docker did
    /// not) and MAC. Returns both.
    pub async fn docker_create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        address: Option<Ipv4Net>,
        mac: Option<&str>,
    ) -> Result<(Ipv4Net, [u8; 6])> {
        check_id("endpoint", endpoint_id)?;
        let mut inner = self.inner.lock().await;
        let network = inner.docker_network(network_id)?.clone();
        let pool = network.ipam.clone().expect("bridge networks have IPAM");
        if inner.state.endpoints.contains_key(endpoint_id)
            || inner.reservations.contains_key(endpoint_id)
        {
            return Err(Error::Conflict(format!(
                "endpoint {endpoint_id} already exists"
            )));
        }
        let taken = inner.endpoint_ips(&network.id);
        let ip = match address {
            Some(address) => {
                if address.prefix_len() != pool.subnet.prefix_len() {
                    return Err(Error::Invalid(format!(
                        "address {address} does not have the prefix length of subnet {}",
                        pool.subnet
                    )));
                }
                crate::ipam::check_static(&pool, address.addr(), &taken).map_err(Error::Invalid)?;
                address.addr()
            }
            None => crate::ipam::allocate(&pool, &inner.used_ips(&network.id))
                .map_err(Error::Conflict)?,
        };
        let mac = match mac {
            Some(text) => parse_mac(text)?,
            None => endpoint_mac(ip),
        };
        inner.check_mac(&network, mac)?;
        inner.reservations.insert(
            endpoint_id.to_string(),
            Reservation {
                network_id: network.id.clone(),
                ip,
                mac,
            },
        );
        let address = Ipv4Net::new(ip, pool.subnet.prefix_len()).expect("prefix of a subnet");
        Ok((address, mac))
    }

    /// Makes the endpoint's veth pair, records the sandbox, and hands Docker the peer.
    pub async fn docker_join(
        &self,
        network_id: &str,
        endpoint_id: &str,
        sandbox_key: &str,
    ) -> Result<Joined> {
        let mut inner = self.inner.lock().await;
        let network = inner.docker_network(network_id)?.clone();
        if inner.state.endpoints.contains_key(endpoint_id) {
            return Err(Error::Conflict(format!(
                "endpoint {endpoint_id} is already joined"
            )));
        }
        let reservation = inner
            .reservations
            .get(endpoint_id)
            .filter(|r| r.network_id == network.id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} not found")))?;
        let path = Path::new(sandbox_key);
        if !path.is_absolute() {
            return Err(Error::Invalid(format!(
                "invalid sandbox key {sandbox_key:?}: expected the path of a network namespace"
            )));
        }
        let (sandbox, new_sandbox) = match inner.sandbox_at(path) {
            Some(s) => (s.clone(), false),
            None => (
                Sandbox {
                    id: new_id(),
                    // Docker names its sandboxes' netns after the sandbox id.
                    name: path
                        .file_name()
                        .map_or(sandbox_key.into(), |n| n.to_string_lossy().into_owned()),
                    identity: UNKNOWN_IDENTITY,
                    path: path.to_path_buf(),
                    owned: false,
                    mode: None,
                    docker: true,
                },
                true,
            ),
        };
        let mut endpoint = Endpoint {
            id: endpoint_id.to_string(),
            network_id: network.id.clone(),
            sandbox_id: sandbox.id.clone(),
            ip: reservation.ip,
            mac: reservation.mac,
            host_ifname: host_ifname(endpoint_id),
            sandbox_ifname: None,
            aliases: Vec::new(),
            state: EndpointState::Pending,
            ports: Vec::new(),
            container_id: None,
        };
        let mut changes = vec![Change::PutEndpoint(&endpoint)];
        if new_sandbox {
            changes.push(Change::PutSandbox(&sandbox));
        }
        inner.store.commit_intent(&changes)?;
        inner
            .state
            .sandboxes
            .insert(sandbox.id.clone(), sandbox.clone());
        inner
            .state
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        inner.reservations.remove(endpoint_id);

        let peer = peer_ifname(endpoint_id);
        let realized = match inner
            .realize_endpoint(&mut endpoint, &network, &sandbox, Some(&peer))
            .await
        {
            Ok(()) => {
                endpoint.state = EndpointState::Active;
                inner
                    .store
                    .commit(&[Change::PutEndpoint(&endpoint)])
                    .map_err(Error::from)
            }
            Err(err) => Err(err.into()),
        };
        if let Err(err) = realized {
            inner.teardown_endpoint(&endpoint, &network).await;
            inner.forget_endpoint(&endpoint)?;
            inner
                .reservations
                .insert(endpoint_id.to_string(), reservation);
            return Err(err);
        }
        inner
            .state
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        tracing::info!(network = network.name, sandbox = sandbox_key, ip = %endpoint.ip, "docker endpoint joined");
        let gateway = network.ipam.expect("bridge networks have IPAM").gateway;
        Ok(Joined {
            ifname: peer,
            gateway: (!network.internal).then_some(gateway),
        })
    }

    /// Removes the endpoint from the kernel; its address stays held until DeleteEndpoint.
    /// Leaving an endpoint netd no longer has (its sandbox vanished first) succeeds.
    pub async fn docker_leave(&self, endpoint_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let Some(endpoint) = inner.state.endpoints.get(endpoint_id).cloned() else {
            return Ok(());
        };
        inner.remove_endpoint(&endpoint).await?;
        inner.reservations.insert(
            endpoint.id.clone(),
            Reservation {
                network_id: endpoint.network_id,
                ip: endpoint.ip,
                mac: endpoint.mac,
            },
        );
        Ok(())
    }

    /// Releases the endpoint entirely; idempotent, as Docker retries deletes.
    pub async fn docker_delete_endpoint(&self, endpoint_id: &str) -> Result<()> {
        let mut inner = self.inner.lock().await;
        inner.reservations.remove(endpoint_id);
        if let Some(endpoint) = inner.state.endpoints.get(endpoint_id).cloned() {
            inner.remove_endpoint(&endpoint).await?;
        }
        Ok(())
    }

    /// Publishes the endpoint's ports (`-p` specs), replacing any it had.
    pub async fn docker_publish(&self, endpoint_id: &str, specs: &[String]) -> Result<()> {
        self.inner.lock().await.set_ports(endpoint_id, specs).await
    }

    /// The endpoint's published ports; none for an endpoint that is only reserved.
    pub async fn docker_endpoint_ports(&self, endpoint_id: &str) -> Result<Vec<PortMapping>> {
        let inner = self.inner.lock().await;
        match inner.state.endpoints.get(endpoint_id) {
            Some(endpoint) => Ok(endpoint.ports.clone()),
            None if inner.reservations.contains_key(endpoint_id) => Ok(Vec::new()),
            None => Err(Error::NotFound(format!("endpoint {endpoint_id} not found"))),
        }
    }
}

impl Inner {
    /// A network Docker may drive: a bridge network Docker created or adopted, by the id
    /// Docker knows it by.
    fn docker_network(&self, id: &str) -> Result<&Network> {
        self.state
            .networks
            .get(id)
            .filter(|n| n.docker)
            .or_else(|| {
                self.state
                    .networks
                    .values()
                    .find(|n| n.docker_id.as_deref() == Some(id))
            })
            .filter(|n| n.driver == Driver::Bridge)
            .ok_or_else(|| Error::NotFound(format!("network {id} not found")))
    }

    /// Lets Docker use the netd network `name` under Docker's id. Docker's view must match
    /// netd's: same subnet, gateway and internal flag; the rest of the settings are netd's.
    fn adopt(&mut self, name: &str, req: &DockerNetwork) -> Result<()> {
        let mut network = self.network(name)?.clone();
        if network.docker_id.as_deref() == Some(req.id.as_str()) {
            return Ok(());
        }
        let pool = match (&network.ipam, network.driver, network.docker) {
            (Some(pool), Driver::Bridge, false) => pool.clone(),
            _ => {
                return Err(Error::Invalid(format!(
                    "network {name} cannot be adopted: only bridge networks made with netd can"
                )))
            }
        };
        if let Some(other) = &network.docker_id {
            return Err(Error::Conflict(format!(
                "network {name} is already used by Docker network {other}"
            )));
        }
        if (pool.subnet, pool.gateway, network.internal) != (req.subnet, req.gateway, req.internal)
        {
            return Err(Error::Invalid(format!(
                "network {name} has subnet {}, gateway {}{}: create the Docker network with the same --subnet, --gateway{}",
                pool.subnet,
                pool.gateway,
                if network.internal { ", internal" } else { "" },
                if network.internal { " and --internal" } else { "" },
            )));
        }
        if !req.options.is_empty() {
            return Err(Error::Invalid(format!(
                "an adopted network keeps netd's options; drop {}",
                req.options.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        network.docker_id = Some(req.id.clone());
        self.store.commit(&[Change::PutNetwork(&network)])?;
        tracing::info!(name, docker_id = req.id, "Docker uses the network");
        self.state.networks.insert(network.id.clone(), network);
        Ok(())
    }

    /// Replaces an endpoint's published ports: the store first, then the dataplane.
    async fn set_ports(&mut self, endpoint_id: &str, specs: &[String]) -> Result<()> {
        let mut endpoint = self
            .state
            .endpoints
            .get(endpoint_id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("endpoint {endpoint_id} is not joined")))?;
        let network = self
            .state
            .networks
            .get(&endpoint.network_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("endpoint {endpoint_id} has no network"))?;
        let chosen = self.choose_ports(specs, &network, Some(endpoint_id))?;
        if chosen == endpoint.ports {
            return Ok(());
        }
        let ifindex = self.ifindex.get(&endpoint.id).copied();
        let old = ifindex.map(|i| published_entries(&endpoint, &network, i));
        endpoint.ports = chosen;
        self.store.commit(&[Change::PutEndpoint(&endpoint)])?;
        self.state
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        if let (Some(ifindex), Some(old)) = (ifindex, old) {
            self.dataplane.unpublish(&old)?;
            self.dataplane
                .publish(&published_entries(&endpoint, &network, ifindex))?;
        }
        Ok(())
    }
}
