//! The uplink of the bench's "host" namespaces (NAT topologies, engines' host): one veth pair to
//! an "outside" namespace that has only that link and no default route, so nothing it sends can
//! leave it; the host's default route points at the outside namespace.

use std::net::Ipv4Addr;

use anyhow::Result;

use crate::cmd;
use crate::netns::Netns;

/// One topology's uplink: its name in the host namespace and the addresses of both ends, all in
/// one /`prefix`. The outside end is always `eth0`.
pub struct Uplink {
    pub name: &'static str,
    pub host_ips: &'static [Ipv4Addr],
    pub outside_ip: Ipv4Addr,
    pub prefix: u8,
}

impl Uplink {
    /// Creates the uplink in `host` with its peer moved straight into `outside`.
    pub fn create(&self, host: &Netns, outside: &Netns) -> Result<()> {
        let (uplink, prefix, outside_ip) = (self.name, self.prefix, self.outside_ip);
        host.add_veth_to(uplink, outside)?;
        for ip in self.host_ips {
            cmd::run(&mut host.exec(
                "ip",
                ["addr", "add", &format!("{ip}/{prefix}"), "dev", uplink],
            ))?;
        }
        cmd::run(&mut outside.exec(
            "ip",
            [
                "addr",
                "add",
                &format!("{outside_ip}/{prefix}"),
                "dev",
                "eth0",
            ],
        ))?;
        cmd::run(&mut host.exec("ip", ["link", "set", uplink, "up"]))?;
        cmd::run(&mut outside.exec("ip", ["link", "set", "eth0", "up"]))?;
        cmd::run(&mut host.exec(
            "ip",
            [
                "route",
                "add",
                "default",
                "via",
                &outside_ip.to_string(),
                "dev",
                uplink,
            ],
        ))
    }
}
