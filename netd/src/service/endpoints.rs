//! Connecting sandboxes to networks, and disconnecting them.
use std::collections::HashMap;
use std::path::Path;

use netd_common::EndpointInfo;

use super::networks::check_name;
use super::ports::published_entries;
use super::{Error, Inner, Result, Service};
use crate::api::types::{ConnectRequest, Connected, DisconnectRequest};
use crate::crashpoint;
use crate::dataplane::Dataplane;
use crate::ipam;
use crate::model::{
    endpoint_mac, format_mac, gateway_mac, host_ifname, new_id, Driver, Endpoint, EndpointState,
    Network, Sandbox,
};
use crate::netlink::{netns, EndpointLink};
use crate::store::Change;

impl Service {
    pub async fn connect(&self, network: &str, req: ConnectRequest) -> Result<Connected> {
        self.inner.lock().await.connect(network, req).await
    }

    pub async fn disconnect(&self, network: &str, req: DisconnectRequest) -> Result<()> {
        let mut inner = self.inner.lock().await;
        let network = inner.network(network)?.clone();
        let endpoint = match (&req.container_id, req.netns.is_empty()) {
            (Some(container_id), _) => inner
                .attachment(&network, container_id, req.interface.as_deref())
                .cloned(),
            (None, false) => {
                let path = resolve_netns(&req.netns)?;
                inner
                    .sandbox_at(&path)
                    .and_then(|s| {
                        inner
                            .endpoints_of(&network.id)
                            .find(|e| e.sandbox_id == s.id)
                    })
                    .cloned()
            }
            (None, true) => {
                return Err(Error::Invalid(
                    "disconnect needs a netns or a container ID".into(),
                ))
            }
        };
        let endpoint = endpoint.ok_or_else(|| {
            let what = req.container_id.as_deref().unwrap_or(&req.netns);
            Error::NotFound(format!(
                "{what} is not connected to network {}",
                network.name
            ))
        })?;
        inner.remove_endpoint(&endpoint).await
    }
}

pub(super) fn resolve_netns(arg: &str) -> Result<std::path::PathBuf> {
    netns::resolve(arg).map_err(|e| Error::NotFound(format!("{e:#}")))
}

impl Inner {
    /// The sandbox recorded for this netns file, if the namespace there is still the same one.
    pub(super) fn sandbox_at(&self, path: &Path) -> Option<&Sandbox> {
        let identity = netns::identity(path).ok();
        self.state
            .sandboxes
            .values()
            .find(|s| s.path == path && (s.docker || Some(s.identity) == identity))
    }

    async fn connect(&mut self, network: &str, req: ConnectRequest) -> Result<Connected> {
        let network = self.network(network)?.clone();
        if !network.driver.switches() {
            return Err(Error::Invalid(format!(
                "a sandbox cannot be connected to network {} (driver {})",
                network.name,
                network.driver.name()
            )));
        }
        for alias in &req.aliases {
            check_name("alias", alias)?;
        }
        if let Some(name) = &req.interface {
            check_ifname(name)?;
        }
        let mac = req.mac_address.as_deref().map(parse_mac).transpose()?;
        // Malformed -p specs are refused before anything else is looked at.
        for spec in &req.ports {
            crate::ports::PortSpec::parse(spec).map_err(Error::Invalid)?;
        }
        let pool = network.ipam.clone().expect("bridge networks have IPAM");
        let path = resolve_netns(&req.netns)?;
        let (sandbox, new_sandbox) = match self.sandbox_at(&path) {
            Some(s) => (s.clone(), false),
            None => (
                Sandbox {
                    id: new_id(),
                    name: req.netns.clone(),
                    identity: netns::identity(&path)?,
                    path,
                    owned: false,
                    mode: None,
                    docker: false,
                },
                true,
            ),
        };
        match sandbox.mode {
            Some(Driver::Host) => {
                return Err(Error::Conflict(format!(
                    "sandbox {} uses the host network: it cannot be connected to other networks",
                    sandbox.name
                )))
            }
            Some(_) => {
                return Err(Error::Conflict(format!(
                    "sandbox {} is on network none: it cannot be connected to other networks",
                    sandbox.name
                )))
            }
            None => {}
        }
        if self
            .endpoints_of(&network.id)
            .any(|e| e.sandbox_id == sandbox.id)
        {
            return Err(Error::Conflict(format!(
                "sandbox {} is already connected to network {}",
                sandbox.name, network.name
            )));
        }
        if let Some(mac) = mac {
            self.check_mac(&network, mac)?;
        }
        let ports = self.choose_ports(&req.ports, &network, None)?;
        let id = new_id();
        let derived_mac = mac.is_none();
        let (ip, mac) = if network.driver == Driver::Overlay {
            // Taken in the cluster store first: no other host can hand it out any more.
            self.claim_address(&network, req.ipv4_address, &id, mac)
                .await?
        } else {
            let used = self.used_ips(&network.id);
            let ip = match req.ipv4_address {
                Some(ip) => {
                    ipam::check_static(&pool, ip, &used).map_err(Error::Invalid)?;
                    ip
                }
                None => ipam::allocate(&pool, &used).map_err(Error::Conflict)?,
            };
            (ip, mac.unwrap_or_else(|| endpoint_mac(ip)))
        };
        // A MAC derived from the address can only be checked once the address is known.
        if derived_mac {
            if let Err(err) = self.check_mac(&network, mac) {
                let _ = self.release_address_of(&network, ip, &id).await;
                return Err(err);
            }
        }
        let mut endpoint = Endpoint {
            host_ifname: host_ifname(&id),
            id,
            network_id: network.id.clone(),
            sandbox_id: sandbox.id.clone(),
            ip,
            mac,
            sandbox_ifname: req.interface,
            aliases: req.aliases,
            state: EndpointState::Pending,
            ports,
            container_id: req.container_id,
        };

        // Intent first: if we crash from here on, restart finds a Pending endpoint (or, if
        // the non-durable commit was lost, an orphan veth) and rolls it back.
        let mut changes = vec![Change::PutEndpoint(&endpoint)];
        if new_sandbox {
            changes.push(Change::PutSandbox(&sandbox));
        }
        self.store.commit_intent(&changes)?;
        self.state
            .sandboxes
            .insert(sandbox.id.clone(), sandbox.clone());
        self.state
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());

        let realized = match self
            .realize_endpoint(&mut endpoint, &network, &sandbox, None)
            .await
        {
            Ok(()) => {
                endpoint.state = EndpointState::Active;
                self.store.commit(&[Change::PutEndpoint(&endpoint)])
            }
            Err(err) => Err(err),
        };
        if let Err(err) = realized {
            // Whatever failed, the caller gets an error: nothing of the endpoint may remain.
            self.teardown_endpoint(&endpoint, &network).await;
            self.forget_endpoint(&endpoint)?;
            if let Err(e) = self.release_address(&endpoint).await {
                // The next cluster resync releases it.
                tracing::warn!("cannot release {ip} after a failed connect: {e}");
            }
            return Err(err.into());
        }
        self.state
            .endpoints
            .insert(endpoint.id.clone(), endpoint.clone());
        tracing::info!(network = network.name, sandbox = sandbox.name, %ip, "connected");
        Ok(Connected {
            interface: endpoint.sandbox_ifname.unwrap_or_default(),
            ipv4_address: format!("{ip}/{}", pool.subnet.prefix_len()),
            mac_address: format_mac(endpoint.mac),
            ports: endpoint.ports.iter().map(ToString::to_string).collect(),
            gateway: pool.gateway.to_string(),
            host_mac_address: format_mac(gateway_mac(pool.gateway)),
            host_interface: endpoint.host_ifname,
            sandbox: sandbox.path.display().to_string(),
            endpoint_id: endpoint.id,
        })
    }

    /// A MAC an endpoint of the network may take: not the gateway's, not another endpoint's.
    pub(super) fn check_mac(&self, network: &Network, mac: [u8; 6]) -> Result<()> {
        let gateway = network.ipam.as_ref().map(|p| gateway_mac(p.gateway));
        let taken = Some(mac) == gateway
            || self.endpoints_of(&network.id).any(|e| e.mac == mac)
            || self
                .reservations
                .values()
                .any(|r| r.network_id == network.id && r.mac == mac);
        if taken {
            return Err(Error::Conflict(format!(
                "MAC address {} is already in use on network {}",
                format_mac(mac),
                network.name
            )));
        }
        Ok(())
    }

    /// Makes the kernel hold the endpoint: veth pair, addresses, routes, map entries, tc link.
    /// With `hand_off`, the sandbox end stays beside the host end under that name, for a
    /// runtime that moves and addresses it itself (Docker's Join).
    pub(super) async fn realize_endpoint(
        &mut self,
        endpoint: &mut Endpoint,
        network: &Network,
        sandbox: &Sandbox,
        hand_off: Option<&str>,
    ) -> anyhow::Result<()> {
        let link = endpoint_link(endpoint, network, sandbox)?;
        let plug_in = |host_ifindex| {
            plug(
                &mut self.dataplane,
                &mut self.ifindex,
                endpoint,
                network,
                host_ifindex,
            )
        };
        let sandbox_ifname = match hand_off {
            Some(peer) => {
                self.netlink
                    .create_unplugged_endpoint(&link, peer, plug_in)
                    .await?;
                None
            }
            None => Some(
                self.netlink
                    .create_endpoint(&link, plug_in)
                    .await?
                    .sandbox_ifname,
            ),
        };
        crashpoint::hit("connect:after-veth");
        if sandbox_ifname.is_some() {
            endpoint.sandbox_ifname = sandbox_ifname;
        }
        self.sync_members(network)?;
        crashpoint::hit("connect:after-dataplane");
        Ok(())
    }

    /// Removes an endpoint: from the store first (durably), then from the kernel.
    pub(super) async fn remove_endpoint(&mut self, endpoint: &Endpoint) -> Result<()> {
        let network = self
            .state
            .networks
            .get(&endpoint.network_id)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("endpoint {} has no network", endpoint.id))?;
        // The cluster store is told first. When it is out of reach the endpoint goes anyway
        // (its sandbox may be gone already, and a restart must not wait for the store):
        // the next resync gives back addresses no local endpoint holds.
        if let Err(err) = self.release_address(endpoint).await {
            tracing::warn!(ip = %endpoint.ip, "address stays held until the cluster store is back: {err}");
        }
        self.forget_endpoint(endpoint)?;
        self.teardown_endpoint(endpoint, &network).await;
        tracing::info!(network = network.name, ip = %endpoint.ip, "disconnected");
        Ok(())
    }

    /// Drops the endpoint from the store and memory, and with it a sandbox netd did not
    /// create once nothing is attached to it any more.
    pub(super) fn forget_endpoint(&mut self, endpoint: &Endpoint) -> anyhow::Result<()> {
        let orphan_sandbox = self
            .state
            .sandboxes
            .get(&endpoint.sandbox_id)
            .filter(|s| !s.owned)
            .filter(|s| {
                !self
                    .state
                    .endpoints
                    .values()
                    .any(|e| e.sandbox_id == s.id && e.id != endpoint.id)
            })
            .map(|s| s.id.clone());
        let mut changes = vec![Change::DeleteEndpoint(&endpoint.id)];
        if let Some(id) = &orphan_sandbox {
            changes.push(Change::DeleteSandbox(id));
        }
        self.store.commit(&changes)?;
        self.state.endpoints.remove(&endpoint.id);
        if let Some(id) = orphan_sandbox {
            self.state.sandboxes.remove(&id);
        }
        Ok(())
    }

    /// Best-effort removal of the endpoint's kernel objects: everything is attempted, and
    /// what fails is logged; reconcile at the next start removes any remainder.
    pub(super) async fn teardown_endpoint(&mut self, endpoint: &Endpoint, network: &Network) {
        let mut failures = Vec::new();
        if let Some(ifindex) = self.ifindex.remove(&endpoint.id) {
            if let Err(e) = self
                .dataplane
                .unpublish(&published_entries(endpoint, network, ifindex))
            {
                failures.push(format!("published ports: {e:#}"));
            }
            if let Err(e) = self
                .dataplane
                .remove_endpoint(&endpoint_info(endpoint, network, ifindex))
            {
                failures.push(format!("map entries: {e:#}"));
            }
        }
        if let Err(e) = self.dataplane.flush_flows(endpoint.ip) {
            failures.push(format!("NAT flows: {e:#}"));
        }
        if let Err(e) = self.sync_members(network) {
            failures.push(format!("flood list: {e:#}"));
        }
        crashpoint::hit("disconnect:after-dataplane");
        if let Err(e) = self.dataplane.detach(&endpoint.host_ifname) {
            failures.push(format!("tc link: {e:#}"));
        }
        if let Err(e) = self.netlink.delete_link(&endpoint.host_ifname).await {
            failures.push(format!("veth: {e:#}"));
        }
        if !failures.is_empty() {
            tracing::warn!(
                endpoint = endpoint.id,
                ?failures,
                "endpoint teardown incomplete"
            );
        }
    }
}

/// Puts the endpoint in the dataplane: map entries, published ports and the tc program.
/// Runs before the link goes up, so the sandbox's first packet is already filtered. The
/// ifindex is recorded first, so a failed connect's teardown finds the entry.
fn plug(
    dataplane: &mut Dataplane,
    ifindexes: &mut HashMap<String, u32>,
    endpoint: &Endpoint,
    network: &Network,
    host_ifindex: u32,
) -> anyhow::Result<()> {
    ifindexes.insert(endpoint.id.clone(), host_ifindex);
    dataplane.put_endpoint(&endpoint_info(endpoint, network, host_ifindex))?;
    dataplane.publish(&published_entries(endpoint, network, host_ifindex))?;
    dataplane.attach(&endpoint.host_ifname)
}

fn check_ifname(name: &str) -> Result<()> {
    if crate::model::valid_ifname(name) {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid interface name {name:?}: use 1-15 characters without '/', ':' or spaces"
        )))
    }
}

/// A unicast MAC such as `02:42:0a:00:00:05`.
pub(super) fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bad = || {
        Error::Invalid(format!(
            "invalid MAC address {text:?}: expected six hex bytes such as 02:42:0a:00:00:05, unicast and not all zero"
        ))
    };
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| {
            (b.len() == 2)
                .then(|| u8::from_str_radix(b, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let mac: [u8; 6] = bytes.try_into().map_err(|_| bad())?;
    if mac[0] & 1 == 1 || mac == [0; 6] {
        return Err(bad());
    }
    Ok(mac)
}

/// What the kernel needs to build the endpoint's veth pair.
pub(super) fn endpoint_link<'a>(
    endpoint: &'a Endpoint,
    network: &Network,
    sandbox: &'a Sandbox,
) -> anyhow::Result<EndpointLink<'a>> {
    let pool = network.ipam.as_ref().expect("bridge networks have IPAM");
    Ok(EndpointLink {
        host_ifname: &endpoint.host_ifname,
        netns: &sandbox.path,
        sandbox_ifname: endpoint.sandbox_ifname.as_deref(),
        address: ipnet::Ipv4Net::new(endpoint.ip, pool.subnet.prefix_len())?,
        gateway: pool.gateway,
        mac: endpoint.mac,
        gateway_mac: gateway_mac(pool.gateway),
        mtu: network.mtu,
        host_mtu: match network.driver {
            Driver::Overlay => network.mtu + netd_common::VXLAN_OVERHEAD,
            _ => network.mtu,
        },
    })
}

pub(super) fn endpoint_info(endpoint: &Endpoint, network: &Network, ifindex: u32) -> EndpointInfo {
    EndpointInfo {
        host_ifindex: ifindex,
        net_id: network.net_id,
        ip: endpoint.ip.octets(),
        mac: endpoint.mac,
        _pad: [0; 2],
    }
}
