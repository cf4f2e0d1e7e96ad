//! The daemon namespace's own addresses: gateway IPs on `lo`, and the prefixes already in use
//! (so automatic subnets avoid them).
use std::net::{IpAddr, Ipv4Addr};

use anyhow::Result;
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::LinkAttribute;
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::{AddressMessageBuilder, RouteMessageBuilder};

use super::{errno, nl_error, set_up, Netlink, LOOPBACK_IFINDEX};

/// Label of every gateway address netd puts on `lo`.
pub const GATEWAY_LABEL: &str = "lo:netd";

impl Netlink {
    /// Puts `ip`/32 on `lo` with label "lo:netd" and makes sure `lo` is up. Idempotent.
    pub async fn add_gateway(&self, ip: Ipv4Addr) -> Result<()> {
        let mut add = self
            .handle
            .address()
            .add(LOOPBACK_IFINDEX, IpAddr::V4(ip), 32);
        add.message_mut()
            .attributes
            .push(AddressAttribute::Label(GATEWAY_LABEL.into()));
        // Both requests go out at once; the kernel handles them in order.
        let add = async {
            match add.execute().await {
                Err(e) if errno(&e) != Some(libc::EEXIST) => {
                    Err(nl_error(format_args!("cannot add gateway {ip} to lo"), &e))
                }
                _ => Ok(()),
            }
        };
        futures::try_join!(set_up(&self.handle, LOOPBACK_IFINDEX, "lo"), add)?;
        Ok(())
    }

    /// Removes the gateway address `ip`/32 labelled "lo:netd" from `lo`. Missing is fine.
    pub async fn remove_gateway(&self, ip: Ipv4Addr) -> Result<()> {
        let mut message = AddressMessageBuilder::<Ipv4Addr>::new()
            .index(LOOPBACK_IFINDEX)
            .address(ip, 32)
            .build();
        // With a label the kernel deletes only an address carrying it: never someone else's.
        message
            .attributes
            .push(AddressAttribute::Label(GATEWAY_LABEL.into()));
        match self.handle.address().del(message).execute().await {
            Ok(()) => Ok(()),
            Err(e) if errno(&e) == Some(libc::EADDRNOTAVAIL) => Ok(()),
            Err(e) => Err(nl_error(
                format_args!("cannot remove gateway {ip} from lo"),
                &e,
            )),
        }
    }

    /// The gateway addresses on `lo` (those labelled "lo:netd").
    pub async fn gateways(&self) -> Result<Vec<Ipv4Addr>> {
        let addresses = self.ipv4_addresses().await?;
        Ok(addresses
            .iter()
            .filter(|a| a.header.index == LOOPBACK_IFINDEX)
            .filter(|a| {
                a.attributes
                    .iter()
                    .any(|attr| matches!(attr, AddressAttribute::Label(l) if l == GATEWAY_LABEL))
            })
            .filter_map(|a| {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            })
            .collect())
    }

    /// Every IPv4 prefix present on the host: the networks of interface addresses, and the
    /// routes of the main table except default routes. Sorted, without duplicates.
    pub async fn host_prefixes(&self) -> Result<Vec<Ipv4Net>> {
        // One dump at a time: a netlink socket refuses a second dump while one runs (EBUSY).
        let addresses = self.ipv4_addresses().await?;
        let routes = self.ipv4_routes().await?;
        let from_addresses = addresses.iter().flat_map(|a| {
            a.attributes.iter().filter_map(move |attr| match attr {
                AddressAttribute::Address(IpAddr::V4(ip))
                | AddressAttribute::Local(IpAddr::V4(ip)) => {
                    Ipv4Net::new(*ip, a.header.prefix_len).ok()
                }
                _ => None,
            })
        });
        let from_routes = routes
            .iter()
            .filter(|r| route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .filter(|r| r.header.destination_prefix_length > 0)
            .filter_map(|r| {
                r.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                        Ipv4Net::new(*ip, r.header.destination_prefix_length).ok()
                    }
                    _ => None,
                })
            });
        let mut prefixes: Vec<Ipv4Net> = from_addresses
            .chain(from_routes)
            .map(|net| net.trunc())
            .collect();
        prefixes.sort();
        prefixes.dedup();
        Ok(prefixes)
    }

    /// Every IPv4 address of the namespace except loopback ones: where published ports
    /// answer (gateways on lo included).
    pub async fn host_addresses(&self) -> Result<Vec<Ipv4Addr>> {
        let mut addrs: Vec<Ipv4Addr> = self
            .ipv4_addresses()
            .await?
            .iter()
            .filter_map(|a| {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            })
            .filter(|ip| !ip.is_loopback())
            .collect();
        addrs.sort();
        addrs.dedup();
        Ok(addrs)
    }

    /// The first IPv4 address of interface `ifindex`: what masquerading rewrites to.
    pub async fn first_ipv4(&self, ifindex: u32) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .ipv4_addresses()
            .await?
            .iter()
            .filter(|a| a.header.index == ifindex)
            .find_map(|a| {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })
            }))
    }

    /// The interface holding `ip`, with its name and MTU: the underlay of an overlay.
    pub async fn interface_with_address(&self, ip: Ipv4Addr) -> Result<Option<(String, u32)>> {
        let index = self.ipv4_addresses().await?.iter().find_map(|a| {
            a.attributes
                .contains(&AddressAttribute::Local(IpAddr::V4(ip)))
                .then_some(a.header.index)
        });
        let Some(index) = index else {
            return Ok(None);
        };
        Ok(self.link_by_index(index).await.and_then(|link| {
            let mtu = link.attributes.iter().find_map(|attr| match attr {
                LinkAttribute::Mtu(mtu) => Some(*mtu),
                _ => None,
            })?;
            Some((super::link_name(&link)?.to_owned(), mtu))
        }))
    }

    /// The interface of the main table's IPv4 default route, if there is one.
    pub async fn default_route_ifindex(&self) -> Result<Option<u32>> {
        Ok(self
            .ipv4_routes()
            .await?
            .iter()
            .filter(|r| route_table(r) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .filter(|r| r.header.destination_prefix_length == 0)
            .find_map(|r| {
                r.attributes.iter().find_map(|attr| match attr {
                    RouteAttribute::Oif(index) => Some(*index),
                    _ => None,
                })
            }))
    }

    /// All IPv4 addresses of the namespace.
    async fn ipv4_addresses(&self) -> Result<Vec<AddressMessage>> {
        let mut request = self.handle.address().get();
        request.message_mut().header.family = AddressFamily::Inet;
        request
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("cannot list addresses", &e))
    }

    /// All IPv4 routes of the namespace, every table.
    async fn ipv4_routes(&self) -> Result<Vec<RouteMessage>> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        self.handle
            .route()
            .get(filter)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error("cannot list routes", &e))
    }
}

/// The table of a route: the RTA_TABLE attribute when present (tables above 255), else the
/// header's.
fn route_table(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|attr| match attr {
            RouteAttribute::Table(table) => Some(*table),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}
