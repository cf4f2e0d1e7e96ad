//! CNI attachments: endpoints named by (container ID, interface) rather than by netns, so
//! DEL, CHECK and GC work even when the runtime no longer has the netns.
use super::{Error, Inner, Result, Service};
use crate::api::types::{Attachment, GcReport};
use crate::model::{Endpoint, Network};

impl Service {
    /// Removes the network's CNI attachments that `valid` does not list.
    pub async fn gc(&self, network: &str, valid: &[Attachment]) -> Result<GcReport> {
        let mut inner = self.inner.lock().await;
        let network = inner.network(network)?.clone();
        let stale: Vec<Endpoint> = inner
            .endpoints_of(&network.id)
            .filter(|e| {
                e.container_id.as_ref().is_some_and(|id| {
                    !valid.iter().any(|v| {
                        &v.container_id == id
                            && Some(v.interface.as_str()) == e.sandbox_ifname.as_deref()
                    })
                })
            })
            .cloned()
            .collect();
        let mut report = GcReport::default();
        for endpoint in stale {
            inner.remove_endpoint(&endpoint).await?;
            report.removed.push(Attachment {
                container_id: endpoint.container_id.unwrap_or_default(),
                interface: endpoint.sandbox_ifname.unwrap_or_default(),
            });
        }
        Ok(report)
    }

    /// Whether the attachment is whole: recorded, its sandbox still the same netns, its
    /// host-side veth present, and the interface inside the sandbox carrying its address.
    pub async fn check(&self, network: &str, attachment: &Attachment) -> Result<()> {
        let inner = self.inner.lock().await;
        let network = inner.network(network)?;
        let endpoint = inner
            .attachment(
                network,
                &attachment.container_id,
                Some(&attachment.interface),
            )
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "container {} has no interface {} on network {}",
                    attachment.container_id, attachment.interface, network.name
                ))
            })?;
        let sandbox = inner
            .state
            .sandboxes
            .get(&endpoint.sandbox_id)
            .filter(|s| inner.sandbox_at(&s.path).is_some())
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "the network namespace of container {} is gone",
                    attachment.container_id
                ))
            })?;
        if inner
            .netlink
            .link_index(&endpoint.host_ifname)
            .await?
            .is_none()
        {
            return Err(Error::Conflict(format!(
                "interface {} of container {} (host side {}) is gone from {}",
                attachment.interface,
                attachment.container_id,
                endpoint.host_ifname,
                sandbox.path.display()
            )));
        }
        let prefix = network.ipam.as_ref().map_or(32, |p| p.subnet.prefix_len());
        let address = ipnet::Ipv4Net::new(endpoint.ip, prefix).map_err(anyhow::Error::from)?;
        if !inner
            .netlink
            .sandbox_has_address(&sandbox.path, &attachment.interface, address)
            .await?
        {
            return Err(Error::Conflict(format!(
                "interface {} in {} does not carry {address}",
                attachment.interface,
                sandbox.path.display()
            )));
        }
        Ok(())
    }
}

impl Inner {
    /// The network's endpoint made by CNI for this container (and interface, if given).
    pub(super) fn attachment<'a>(
        &'a self,
        network: &'a Network,
        container_id: &str,
        interface: Option<&str>,
    ) -> Option<&'a Endpoint> {
        self.endpoints_of(&network.id).find(|e| {
            e.container_id.as_deref() == Some(container_id)
                && interface.is_none_or(|name| e.sandbox_ifname.as_deref() == Some(name))
        })
    }
}
