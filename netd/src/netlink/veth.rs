//! Endpoints: a veth pair from the daemon's namespace into a sandbox, addressed and routed.
//!
//! `create_endpoint` keeps round-trips few and overlapping:
//! - a socket opened inside the sandbox (no thread hand-off) lists its links to name the peer,
//!   then its routes (for the default route) while the host creates the pair;
//! - one RTM_NEWLINK creates both ends with names, MACs and MTU, the peer directly inside the
//!   sandbox, both down; NLM_F_ECHO returns the host end's index and its peer's index;
//! - IPv6 is disabled on each end before it goes up, so neither sends ND/MLD;
//! - then each side sends its remaining requests in one go (the kernel handles them in order):
//!   host: up, /32 route, neighbor; sandbox: up, address, default route.
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::sandbox::Sandbox;
use super::{
    delete_link_by_name, disable_ipv6, errno, get_link, link_name, netns, nl_error, set_up,
    CreatedLink, EndpointLink, Netlink,
};
use anyhow::{anyhow, bail, Result};
use futures::StreamExt;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage};
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

impl Netlink {
    /// Creates the veth pair, moves the peer into the sandbox netns and names it ethN, sets MACs
    /// and MTU on both ends, disables IPv6 on both ends, assigns the address, brings both up,
    /// adds a default route via the gateway in the sandbox if it has none yet, and on the host
    /// a /32 route to the sandbox IP via the host veth (src = gateway) and a PERMANENT neighbor
    /// entry IP -> mac. On failure (or if the future is dropped midway) it removes what it made.
    ///
    /// `before_up` runs with the host end's ifindex while both ends are still down: the
    /// place to attach the dataplane, so no packet of the sandbox ever passes unfiltered.
    pub async fn create_endpoint(
        &self,
        link: &EndpointLink<'_>,
        before_up: impl FnOnce(u32) -> Result<()>,
    ) -> Result<CreatedLink> {
        let started = Instant::now();
        let ns = netns::open(link.netns)?;
        let sandbox = Sandbox::connect(&ns, link.netns)?;

        let mut rollback = Rollback::new(&self.handle, link.host_ifname);
        let mut attempts = 0;
        let (sandbox_ifname, echoed, has_default) = loop {
            let name = sandbox.pick_name(link.sandbox_ifname).await?;
            rollback.arm(); // from the moment the request may reach the kernel
            let (created, has_default) = futures::join!(
                self.add_veth(link, &name, Some(&ns)),
                sandbox.has_default_route()
            );
            match created {
                Ok(Pair::Created(echoed)) => break (name, echoed, has_default),
                // A concurrent connect of the same sandbox took the name: pick again.
                Ok(Pair::SandboxNameTaken) if link.sandbox_ifname.is_none() && attempts < 8 => {
                    rollback.disarm();
                    attempts += 1;
                }
                Ok(Pair::SandboxNameTaken) => {
                    rollback.disarm();
                    bail!(
                        "interface {name} already exists in network namespace {}",
                        link.netns.display()
                    );
                }
                Err(e) => {
                    rollback.disarm(); // nothing was created
                    return Err(e);
                }
            }
        };

        let finish = async {
            let (host_index, peer_index) = self.pair_indexes(link, echoed).await?;
            let has_default = has_default?;
            disable_ipv6(link.host_ifname)?;
            sandbox.disable_ipv6(&sandbox_ifname)?;
            before_up(host_index)?;
            let (host, inside) = futures::join!(
                self.route_to(link, host_index),
                sandbox.configure(
                    peer_index,
                    &sandbox_ifname,
                    link.address,
                    link.gateway,
                    has_default
                )
            );
            host.and(inside).map(|()| host_index)
        };
        let host_index = match finish.await {
            Ok(index) => index,
            Err(e) => {
                rollback.run().await;
                return Err(e);
            }
        };
        rollback.disarm();
        tracing::debug!(
            host = link.host_ifname,
            sandbox = %link.netns.display(),
            ifname = %sandbox_ifname,
            elapsed_us = started.elapsed().as_micros() as u64,
            "endpoint created"
        );
        Ok(CreatedLink {
            host_ifindex: host_index,
            sandbox_ifname,
        })
    }

    /// Creates a veth pair whose peer stays in the daemon's namespace, named `peer_ifname`,
    /// for a runtime that moves it into the sandbox itself (Docker's Join). The host side is
    /// made as by [`Netlink::create_endpoint`]; the runtime addresses the peer. Returns the
    /// host end's ifindex. On failure it removes what it made.
    pub async fn create_unplugged_endpoint(
        &self,
        link: &EndpointLink<'_>,
        peer_ifname: &str,
        before_up: impl FnOnce(u32) -> Result<()>,
    ) -> Result<u32> {
        let mut rollback = Rollback::new(&self.handle, link.host_ifname);
        rollback.arm();
        let made = async {
            let echoed = match self.add_veth(link, peer_ifname, None).await? {
                Pair::Created(echoed) => echoed,
                Pair::SandboxNameTaken => bail!("interface {peer_ifname} already exists"),
            };
            let (host_index, _) = self.pair_indexes(link, echoed).await?;
            disable_ipv6(link.host_ifname)?;
            before_up(host_index)?;
            self.route_to(link, host_index).await?;
            Ok(host_index)
        };
        match made.await {
            Ok(index) => {
                rollback.disarm();
                Ok(index)
            }
            Err(e) => {
                rollback.run().await;
                Err(e)
            }
        }
    }

    /// Creates the pair (both ends down, the peer inside the sandbox, or beside the host end
    /// when `ns` is `None`). An error means nothing was created.
    async fn add_veth(
        &self,
        link: &EndpointLink<'_>,
        sandbox_ifname: &str,
        ns: Option<&std::fs::File>,
    ) -> Result<Pair> {
        let mut peer = LinkUnspec::new_with_name(sandbox_ifname)
            .address(link.mac.to_vec())
            .mtu(link.mtu);
        if let Some(ns) = ns {
            peer = peer.setns_by_fd(ns.as_raw_fd());
        }
        let peer = peer.build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(link.host_ifname)
            .address(link.gateway_mac.to_vec())
            .mtu(link.host_mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        let mut request = NetlinkMessage::from(RouteNetlinkMessage::NewLink(message));
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO;
        let what = || format!("cannot create veth {}", link.host_ifname);
        let mut responses = self
            .handle
            .clone()
            .request(request)
            .map_err(|e| nl_error(what(), &e))?;
        let mut echoed = None;
        while let Some(response) = responses.next().await {
            match response.payload {
                NetlinkPayload::Error(e) => {
                    let e = rtnetlink::Error::NetlinkError(e);
                    if errno(&e) == Some(libc::EEXIST) {
                        return match get_link(&self.handle, link.host_ifname).await {
                            Ok(Some(_)) => Err(anyhow!("link {} already exists", link.host_ifname)),
                            _ => Ok(Pair::SandboxNameTaken),
                        };
                    }
                    return Err(nl_error(what(), &e));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(created))
                    if link_name(&created) == Some(link.host_ifname) =>
                {
                    echoed = Some(created);
                }
                _ => {}
            }
        }
        Ok(Pair::Created(echoed))
    }

    /// The host end's index and its peer's index in the sandbox, from the echoed new link.
    async fn pair_indexes(
        &self,
        link: &EndpointLink<'_>,
        echoed: Option<LinkMessage>,
    ) -> Result<(u32, u32)> {
        // Kernels before 6.3 do not echo a new link; ask for it.
        let created = match echoed {
            Some(created) => created,
            None => get_link(&self.handle, link.host_ifname)
                .await?
                .ok_or_else(|| anyhow!("veth {} vanished after creation", link.host_ifname))?,
        };
        let peer_index =
            peer_index(&created).ok_or_else(|| anyhow!("veth {} has no peer", link.host_ifname))?;
        Ok((created.header.index, peer_index))
    }

    /// Puts back the host side of an existing endpoint (reconcile after a restart: someone
    /// may have removed the gateway address, and the kernel drops its routes with it).
    pub async fn restore_host_side(&self, link: &EndpointLink<'_>, host_index: u32) -> Result<()> {
        self.route_to(link, host_index).await
    }

    /// Host side once the pair exists: up, the /32 route (src = gateway), the neighbor entry.
    /// Idempotent: route and neighbor are replaced.
    async fn route_to(&self, link: &EndpointLink<'_>, host_index: u32) -> Result<()> {
        let ip = link.address.addr();
        let host = link.host_ifname;
        let route = async {
            let message = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ip, 32)
                .output_interface(host_index)
                .pref_source(link.gateway)
                .scope(RouteScope::Link)
                .build();
            // Replace: the IP belongs to this endpoint now, whatever route a stale one left.
            self.handle
                .route()
                .add(message)
                .replace()
                .execute()
                .await
                .map_err(|e| {
                    nl_error(
                        format_args!("cannot add route {ip}/32 via {host} src {}", link.gateway),
                        &e,
                    )
                })
        };
        let neighbor = async {
            self.handle
                .neighbours()
                .add(host_index, IpAddr::V4(ip))
                .link_layer_address(&link.mac)
                .replace()
                .execute()
                .await
                .map_err(|e| nl_error(format_args!("cannot add neighbor {ip} on {host}"), &e))
        };
        // Sent together, handled in order: the link is up before the route needs it.
        futures::try_join!(set_up(&self.handle, host_index, host), route, neighbor)?;
        Ok(())
    }
}

/// Outcome of the request that creates a pair.
enum Pair {
    /// Made; carries the host end as the kernel echoed it (kernels since 6.3 do).
    Created(Option<LinkMessage>),
    /// The sandbox already has an interface of that name (nothing was made).
    SandboxNameTaken,
}

/// The peer's ifindex of a veth, from IFLA_LINK (an index in the peer's namespace).
fn peer_index(link: &LinkMessage) -> Option<u32> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::Link(index) => Some(*index),
        _ => None,
    })
}

/// Deletes a half-made endpoint's host veth (and so its peer, routes and neighbor entries)
/// while armed; if dropped while armed (the caller's future was cancelled), the deletion is
/// spawned on the current runtime.
struct Rollback<'a> {
    /// Connection to delete through.
    handle: &'a Handle,
    /// Host-side name of the pair.
    ifname: &'a str,
    /// Whether anything may still need removing.
    armed: bool,
}

impl<'a> Rollback<'a> {
    fn new(handle: &'a Handle, ifname: &'a str) -> Self {
        Rollback {
            handle,
            ifname,
            armed: false,
        }
    }

    fn arm(&mut self) {
        self.armed = true;
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    async fn run(mut self) {
        self.armed = false;
        if let Err(e) = delete_link_by_name(self.handle, self.ifname).await {
            tracing::warn!("rollback of endpoint {}: {e:#}", self.ifname);
        }
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (handle, ifname) = (self.handle.clone(), self.ifname.to_owned());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = delete_link_by_name(&handle, &ifname).await {
                    tracing::warn!("rollback of endpoint {ifname}: {e:#}");
                }
            });
        }
    }
}
