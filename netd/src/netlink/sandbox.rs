//! The sandbox half of an endpoint, through an rtnetlink socket opened inside the sandbox's
//! namespace (a socket belongs to the namespace it was opened in, whichever thread uses it).
//! The calling thread steps into the namespace only to open that socket and to write sysctls
//! (/proc/sys/net follows the opening thread's namespace); see [`netns::Visit`].
use std::collections::HashSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::Result;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::route::RouteHeader;
use rtnetlink::{Handle, RouteMessageBuilder};

use super::Netlink;
use super::{connect_here, disable_ipv6, errno, get_link, link_name, netns, nl_error, set_up};
use rtnetlink::packet_route::address::AddressAttribute;

impl Netlink {
    /// Whether the sandbox at `path` has interface `ifname` carrying `address` (CNI CHECK).
    pub async fn sandbox_has_address(
        &self,
        path: &Path,
        ifname: &str,
        address: Ipv4Net,
    ) -> Result<bool> {
        let ns = netns::open(path)?;
        Sandbox::connect(&ns, path)?
            .has_address(ifname, address)
            .await
    }
}

/// A connection into one sandbox's namespace, for the duration of one operation.
pub(super) struct Sandbox<'a> {
    /// rtnetlink handle of a socket opened inside the sandbox.
    handle: Handle,
    /// The sandbox's namespace, to step into for sysctls.
    ns: &'a File,
    /// Its path, for error messages.
    path: &'a Path,
}

impl<'a> Sandbox<'a> {
    /// Opens an rtnetlink connection inside `ns` (its task runs on the current runtime).
    pub fn connect(ns: &'a File, path: &'a Path) -> Result<Sandbox<'a>> {
        let handle = {
            let _inside = netns::Visit::enter(ns)?;
            connect_here()?
        };
        Ok(Sandbox { handle, ns, path })
    }

    /// The requested name, or the lowest ethN not taken in the sandbox.
    pub async fn pick_name(&self, requested: Option<&str>) -> Result<String> {
        if let Some(name) = requested {
            return Ok(name.to_owned());
        }
        let links: Vec<_> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error("cannot list the links", &e))?;
        let taken: HashSet<&str> = links.iter().filter_map(link_name).collect();
        let free = (0..)
            .map(|n| format!("eth{n}"))
            .find(|name| !taken.contains(name.as_str()));
        Ok(free.expect("ethN names are unbounded"))
    }

    /// Whether the sandbox's main table has an IPv4 default route.
    pub async fn has_default_route(&self) -> Result<bool> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let routes: Vec<_> = self
            .handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error("cannot list the routes", &e))?;
        Ok(routes.iter().any(|r| {
            r.header.table == RouteHeader::RT_TABLE_MAIN && r.header.destination_prefix_length == 0
        }))
    }

    /// net.ipv6.conf.IFNAME.disable_ipv6=1 inside the sandbox.
    pub fn disable_ipv6(&self, ifname: &str) -> Result<()> {
        let _inside = netns::Visit::enter(self.ns)?;
        disable_ipv6(ifname)
    }

    /// Brings the interface up, adds the address and, unless the sandbox already has one, a
    /// default route via the gateway. The requests go out at once and the kernel handles them
    /// in order, so the link is up (with its prefix route) before the default route needs it.
    pub async fn configure(
        &self,
        index: u32,
        ifname: &str,
        address: Ipv4Net,
        gateway: Ipv4Addr,
        has_default: bool,
    ) -> Result<()> {
        let add_address = async {
            self.handle
                .address()
                .add(index, IpAddr::V4(address.addr()), address.prefix_len())
                .execute()
                .await
                .map_err(|e| self.error(format_args!("cannot add {address} to {ifname}"), &e))
        };
        let default_route = async {
            if has_default {
                return Ok(());
            }
            let route = RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(gateway)
                .output_interface(index)
                .build();
            match self.handle.route().add(route).execute().await {
                // A concurrent connect of the same sandbox added one first.
                Err(e) if errno(&e) != Some(libc::EEXIST) => {
                    Err(self.error(format_args!("cannot add default route via {gateway}"), &e))
                }
                _ => Ok(()),
            }
        };
        futures::try_join!(
            set_up(&self.handle, index, ifname),
            add_address,
            default_route
        )?;
        Ok(())
    }

    /// Whether interface `ifname` exists and carries `address`.
    pub async fn has_address(&self, ifname: &str, address: Ipv4Net) -> Result<bool> {
        let Some(link) = get_link(&self.handle, ifname).await? else {
            return Ok(false);
        };
        let addresses: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| self.error(format_args!("cannot list the addresses of {ifname}"), &e))?;
        Ok(addresses.iter().any(|a| {
            a.header.prefix_len == address.prefix_len()
                && a.attributes.iter().any(|attr| {
                    matches!(attr, AddressAttribute::Address(IpAddr::V4(ip)) if *ip == address.addr())
                })
        }))
    }

    /// "WHAT in network namespace PATH: reason".
    fn error(&self, what: impl std::fmt::Display, e: &rtnetlink::Error) -> anyhow::Error {
        nl_error(
            format_args!("{what} in network namespace {}", self.path.display()),
            e,
        )
    }
}
