//! Everything netd does to the kernel's network objects other than BPF: veth pairs, addresses,
//! routes, neighbor entries, sysctls and network namespaces, through rtnetlink.
//!
//! - [`Netlink`] holds an rtnetlink connection in the daemon's network namespace. Use it from
//!   threads of that namespace: host-side sysctls are written from the calling thread.
//! - `veth` creates and deletes endpoints; `sandbox` is the part of an endpoint done from a
//!   thread inside the sandbox's namespace; `host` manages gateway addresses and lists the
//!   host's prefixes; [`netns`] resolves, creates and enters namespaces.
//!
//! Errors are one line, naming the object and the kernel's reason.
mod host;
pub mod netns;
mod sandbox;
mod veth;

#[cfg(test)]
mod tests;

use std::fmt::Display;
use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec};

/// `lo` has this index in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// What [`Netlink::create_endpoint`] makes: one veth pair between the daemon's namespace and a
/// sandbox, addressed and routed both ways.
#[derive(Clone, Debug)]
pub struct EndpointLink<'a> {
    /// Host-side name, e.g. "nd3fa9c1e2b4d0"; stays in the daemon's namespace.
    pub host_ifname: &'a str,
    /// The sandbox's netns file (/run/netns/NAME or /proc/PID/ns/net).
    pub netns: &'a Path,
    /// Sandbox-side name; `None` picks the lowest free ethN in the sandbox.
    pub sandbox_ifname: Option<&'a str>,
    /// Sandbox IP with the network's prefix length.
    pub address: Ipv4Net,
    /// Next hop of the sandbox's default route; must already be a local address of the host
    /// (see [`Netlink::add_gateway`]), as it is the source of the host's route to the sandbox.
    pub gateway: Ipv4Addr,
    /// Sandbox-side MAC.
    pub mac: [u8; 6],
    /// Host-side MAC (the network's gateway MAC).
    pub gateway_mac: [u8; 6],
    /// MTU of the sandbox end.
    pub mtu: u32,
    /// MTU of the host end: larger than `mtu` on overlay networks, so the dataplane can
    /// grow a full-sized packet by the VXLAN headers (the kernel caps growth at the MTU of
    /// the device the packet is on). Nothing is sent out of it: deliveries bypass it.
    pub host_mtu: u32,
}

/// The result of [`Netlink::create_endpoint`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedLink {
    /// Index of the host-side veth in the daemon's namespace.
    pub host_ifindex: u32,
    /// Name of the sandbox-side veth (eth0, eth1, ...).
    pub sandbox_ifname: String,
}

/// rtnetlink access to the daemon's network namespace.
#[derive(Clone, Debug)]
pub struct Netlink {
    /// Handle of a connection opened in the daemon's namespace; its task runs on the runtime
    /// that called [`Netlink::connect`].
    handle: Handle,
}

impl Netlink {
    /// Opens an rtnetlink connection in the calling thread's network namespace.
    pub async fn connect() -> Result<Netlink> {
        Ok(Netlink {
            handle: connect_here()?,
        })
    }

    /// The underlying rtnetlink handle, for requests this module does not wrap.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Deletes a link in the daemon's namespace (a veth's peer goes with it). Missing is fine.
    pub async fn delete_link(&self, ifname: &str) -> Result<()> {
        delete_link_by_name(&self.handle, ifname).await
    }

    /// Index of the link named `ifname`, if there is one.
    pub async fn link_index(&self, ifname: &str) -> Result<Option<u32>> {
        Ok(get_link(&self.handle, ifname)
            .await?
            .map(|link| link.header.index))
    }

    /// Name of the link with index `index`, if there is one.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>> {
        Ok(self
            .link_by_index(index)
            .await
            .as_ref()
            .and_then(link_name)
            .map(str::to_owned))
    }

    /// The link with index `index`, if there is one (a failed lookup is none).
    async fn link_by_index(&self, index: u32) -> Option<LinkMessage> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .match_index(index)
            .execute()
            .try_collect()
            .await
            .unwrap_or_default();
        links.into_iter().next()
    }

    /// Names of the links whose name starts with `prefix`.
    pub async fn links_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let links: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("cannot list links", &e))?;
        Ok(links
            .iter()
            .filter_map(link_name)
            .filter(|name| name.starts_with(prefix))
            .map(str::to_owned)
            .collect())
    }
}

/// Opens an rtnetlink connection in the calling thread's namespace and spawns its task on the
/// current tokio runtime.
fn connect_here() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| anyhow!("cannot open rtnetlink socket: {e}"))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Brings `lo` up in the calling thread's namespace (used right after creating one).
async fn link_up_lo_here() -> Result<()> {
    let handle = connect_here()?;
    set_up(&handle, LOOPBACK_IFINDEX, "lo").await
}

/// `ip link set dev INDEX up`.
async fn set_up(handle: &Handle, index: u32, name: &str) -> Result<()> {
    handle
        .link()
        .change(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| nl_error(format_args!("cannot bring {name} up"), &e))
}

/// The link named `name`, or `None`.
async fn get_link(handle: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl_error(format_args!("cannot look up link {name}"), &e)),
    }
}

/// `ip link del NAME` in one round-trip; a missing link is fine.
async fn delete_link_by_name(handle: &Handle, name: &str) -> Result<()> {
    let message = LinkUnspec::new_with_name(name).build();
    match handle.link().del_with_message(message).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(nl_error(format_args!("cannot delete link {name}"), &e)),
    }
}

/// The name attribute of a link message.
fn link_name(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|attr| match attr {
        LinkAttribute::IfName(name) => Some(name.as_str()),
        _ => None,
    })
}

/// Sets net.ipv6.conf.IFNAME.disable_ipv6=1 in the calling thread's namespace. A kernel without
/// IPv6 (no /proc/sys/net/ipv6) has nothing to disable.
fn disable_ipv6(ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, b"1") {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == ErrorKind::NotFound
                && !Path::new("/proc/sys/net/ipv6/conf").exists() =>
        {
            Ok(())
        }
        Err(e) => bail!("cannot disable IPv6 on {ifname}: {e}"),
    }
}

/// The errno of a netlink error reply, if `e` is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|code| code.get().abs()),
        _ => None,
    }
}

/// One-line error: "WHAT: kernel reason".
fn nl_error(what: impl Display, e: &rtnetlink::Error) -> anyhow::Error {
    match errno(e) {
        Some(code) => anyhow!("{what}: {}", nix::errno::Errno::from_raw(code).desc()),
        None => anyhow!("{what}: {e}"),
    }
}
