//! Making the kernel match the store: at start-up (after a crash or a reboot) and, for
//! sandboxes that vanish under us, periodically.
use std::collections::BTreeSet;

use super::endpoints::{endpoint_info, endpoint_link};
use super::ports::published_entries;
use super::sandboxes::UNKNOWN_IDENTITY;
use super::{network_entry, Inner, Service, Settings};
use crate::model::{is_host_ifname, Endpoint, EndpointState, Sandbox};
use crate::netlink::netns;

impl Service {
    /// Removes endpoints whose veth disappeared, e.g. because the sandbox's netns was
    /// destroyed when its last process exited.
    pub async fn reap_dead_endpoints(&self) -> anyhow::Result<()> {
        let mut inner = self.inner.lock().await;
        inner.forget_vanished_sandboxes().await?;
        let live: BTreeSet<String> = inner
            .netlink
            .links_with_prefix("nd")
            .await?
            .into_iter()
            .collect();
        let dead: Vec<Endpoint> = inner
            .state
            .endpoints
            .values()
            .filter(|e| e.state == EndpointState::Active && !live.contains(&e.host_ifname))
            .cloned()
            .collect();
        for endpoint in dead {
            tracing::info!(
                endpoint = endpoint.id,
                "sandbox gone: removing its endpoint"
            );
            inner.remove_endpoint(&endpoint).await?;
        }
        Ok(())
    }
}

impl Inner {
    pub(super) async fn reconcile(&mut self, settings: &Settings) -> anyhow::Result<()> {
        self.ensure_predefined(settings.bridge_subnet).await?;
        // Learn the kernel's ifindexes first, so flood lists stay whole while we repair.
        for endpoint in self.state.endpoints.values() {
            if let Some(ifindex) = self.netlink.link_index(&endpoint.host_ifname).await? {
                self.ifindex.insert(endpoint.id.clone(), ifindex);
            }
        }
        self.forget_vanished_sandboxes().await?;
        // Gateways first: endpoint routes use them as source address.
        self.reconcile_gateways().await?;
        self.reconcile_endpoints().await?;
        self.remove_orphan_links().await?;
        self.reconcile_dataplane()?;
        self.refresh_host_addresses().await?;
        tracing::info!(
            networks = self.state.networks.len(),
            endpoints = self.state.endpoints.len(),
            sandboxes = self.state.sandboxes.len(),
            "reconciled"
        );
        Ok(())
    }

    /// Forgets sandboxes whose netns is gone (deleted behind netd's back, or its last
    /// process exited) together with their endpoints.
    async fn forget_vanished_sandboxes(&mut self) -> anyhow::Result<()> {
        let vanished: Vec<Sandbox> = self
            .state
            .sandboxes
            .values()
            .filter(|s| !s.docker && self.sandbox_at(&s.path).is_none())
            .cloned()
            .collect();
        for sandbox in vanished {
            tracing::info!(name = sandbox.name, "sandbox netns gone: forgetting it");
            self.forget_sandbox(&sandbox).await?;
            if sandbox.owned && sandbox.identity == UNKNOWN_IDENTITY {
                // A crash interrupted `sandbox create`: the netns, if any, is ours.
                netns::delete_named(&sandbox.name)?;
            }
        }
        Ok(())
    }

    /// Pending endpoints are rolled back; active ones get their host side checked or, where
    /// the kernel lost the veth but the sandbox lives, are rebuilt.
    async fn reconcile_endpoints(&mut self) -> anyhow::Result<()> {
        let endpoints: Vec<Endpoint> = self.state.endpoints.values().cloned().collect();
        for mut endpoint in endpoints {
            let network = self.state.networks.get(&endpoint.network_id).cloned();
            let sandbox = self.state.sandboxes.get(&endpoint.sandbox_id).cloned();
            let (Some(network), Some(sandbox), EndpointState::Active) =
                (network, sandbox, endpoint.state)
            else {
                tracing::info!(endpoint = endpoint.id, state = ?endpoint.state, "rolling back endpoint");
                self.netlink.delete_link(&endpoint.host_ifname).await?;
                self.ifindex.remove(&endpoint.id);
                self.forget_endpoint(&endpoint)?;
                continue;
            };
            if let Some(&ifindex) = self.ifindex.get(&endpoint.id) {
                let link = endpoint_link(&endpoint, &network, &sandbox)?;
                self.netlink.restore_host_side(&link, ifindex).await?;
                continue;
            }
            tracing::info!(
                endpoint = endpoint.id,
                "rebuilding endpoint the kernel lost"
            );
            if let Err(err) = self
                .realize_endpoint(&mut endpoint, &network, &sandbox, None)
                .await
            {
                tracing::warn!(
                    endpoint = endpoint.id,
                    "cannot rebuild endpoint, removing it: {err:#}"
                );
                self.netlink.delete_link(&endpoint.host_ifname).await?;
                self.ifindex.remove(&endpoint.id);
                self.forget_endpoint(&endpoint)?;
            }
        }
        Ok(())
    }

    /// Host-side veths netd made that no endpoint claims (a crash mid-connect).
    async fn remove_orphan_links(&mut self) -> anyhow::Result<()> {
        let claimed: BTreeSet<&str> = self
            .state
            .endpoints
            .values()
            .map(|e| e.host_ifname.as_str())
            .collect();
        for name in self.netlink.links_with_prefix("nd").await? {
            if is_host_ifname(&name) && !claimed.contains(name.as_str()) {
                tracing::info!(link = name, "removing orphan veth");
                self.netlink.delete_link(&name).await?;
            }
        }
        Ok(())
    }

    async fn reconcile_gateways(&mut self) -> anyhow::Result<()> {
        let wanted: BTreeSet<_> = self
            .state
            .networks
            .values()
            .filter_map(network_entry)
            .map(|e| e.gateway)
            .collect();
        for gateway in &wanted {
            self.netlink.add_gateway(*gateway).await?;
        }
        for gateway in self.netlink.gateways().await? {
            if !wanted.contains(&gateway) {
                tracing::info!(%gateway, "removing orphan gateway address");
                self.netlink.remove_gateway(gateway).await?;
            }
        }
        Ok(())
    }

    /// Maps hold exactly the stored state; each endpoint has its tc link, and no other
    /// link stays pinned.
    fn reconcile_dataplane(&mut self) -> anyhow::Result<()> {
        let networks: Vec<_> = self
            .state
            .networks
            .values()
            .filter_map(network_entry)
            .collect();
        // Each endpoint in the kernel, with its network and host ifindex.
        let realized: Vec<_> = self
            .state
            .endpoints
            .values()
            .filter_map(|e| {
                let network = self.state.networks.get(&e.network_id)?;
                Some((e, network, *self.ifindex.get(&e.id)?))
            })
            .collect();
        let endpoints: Vec<_> = realized
            .iter()
            .map(|&(e, network, ifindex)| endpoint_info(e, network, ifindex))
            .collect();
        let published: Vec<_> = realized
            .iter()
            .flat_map(|&(e, network, ifindex)| published_entries(e, network, ifindex))
            .collect();
        self.dataplane.sync(&networks, &endpoints)?;
        for network in self.state.networks.values() {
            if let Some(vni) = network.vni {
                self.dataplane.put_vni(vni, network.net_id)?;
            }
        }
        self.dataplane.sync_published(&published)?;
        let wanted: BTreeSet<&str> = self
            .state
            .endpoints
            .values()
            .map(|e| e.host_ifname.as_str())
            .collect();
        for name in self.dataplane.attached()? {
            if !wanted.contains(name.as_str()) {
                self.dataplane.detach(&name)?;
            }
        }
        for name in wanted {
            self.dataplane.attach(name)?;
        }
        Ok(())
    }
}
