//! Addresses of the "outside -- host -- sandbox" topologies, and how N published ports are laid
//! out on them. Every address lives only inside the bench's own namespaces.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

use crate::bench::uplink::Uplink;

/// The host's uplink (in the host namespace) and its peer in the outside namespace.
pub const UPLINK: &str = "up0";
pub const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 4, 1);
/// A second address on the uplink: one IPv4 address has only 65,535 TCP ports, so 100,000
/// published ports need two host addresses.
pub const HOST_IP_2: Ipv4Addr = Ipv4Addr::new(10, 214, 4, 3);
pub const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(10, 214, 4, 2);
pub const LINK_PREFIX: u8 = 24;
/// The uplink both NAT topologies create.
pub const HOST_UPLINK: Uplink = Uplink {
    name: UPLINK,
    host_ips: &[HOST_IP, HOST_IP_2],
    outside_ip: OUTSIDE_IP,
    prefix: LINK_PREFIX,
};

/// Host ports published for the scale runs start here; container port = host port for netd.
const FIRST_PORT: u16 = 10_000;
/// Ports per host address: 10000-59999 stays clear of the localhost ports below and of netd's
/// masquerade ports (61000-65535).
const PORTS_PER_IP: u32 = 50_000;
/// The localhost runs publish these host ports onto iperf3's and sockperf's ports.
pub const LOCAL_IPERF_PORT: u16 = 9201;
pub const LOCAL_SOCKPERF_PORT: u16 = 9111;

/// A run of consecutive host ports on one address (None: every address, Docker's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub host_ip: Option<Ipv4Addr>,
    pub first: u16,
    pub count: u32,
}

impl Block {
    pub fn last(&self) -> u16 {
        (u32::from(self.first) + self.count - 1) as u16
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.first..=self.last()
    }

    /// netd's (docker run) -p spec: each host port onto the same container port.
    pub fn publish_spec(&self) -> String {
        let ip = self.host_ip.map_or(String::new(), |ip| format!("{ip}:"));
        let (first, last) = (self.first, self.last());
        if first == last {
            format!("{ip}{first}:{first}/tcp")
        } else {
            format!("{ip}{first}-{last}:{first}-{last}/tcp")
        }
    }
}

/// N ports as blocks: one block on all addresses up to 50,000, else 50,000 per host address.
pub fn blocks(n: u32) -> Result<Vec<Block>> {
    match n {
        0 => bail!("0 ports"),
        n if n <= PORTS_PER_IP => Ok(vec![Block {
            host_ip: None,
            first: FIRST_PORT,
            count: n,
        }]),
        n if n <= 2 * PORTS_PER_IP => Ok([HOST_IP, HOST_IP_2]
            .into_iter()
            .zip([PORTS_PER_IP, n - PORTS_PER_IP])
            .map(|(ip, count)| Block {
                host_ip: Some(ip),
                first: FIRST_PORT,
                count,
            })
            .collect()),
        n => bail!(
            "{n} ports do not fit on the two host addresses (at most {})",
            2 * PORTS_PER_IP
        ),
    }
}

/// The address and port of the last published port: the last rule iptables walks to.
pub fn last_port(blocks: &[Block]) -> (Ipv4Addr, u16) {
    let block = blocks.last().expect("at least one block");
    (block.host_ip.unwrap_or(HOST_IP), block.last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_ports() {
        let one = blocks(1).unwrap();
        assert_eq!(one[0].publish_spec(), "10000:10000/tcp");
        assert_eq!(last_port(&one), (HOST_IP, 10_000));
        let ten_k = blocks(10_000).unwrap();
        assert_eq!(ten_k[0].publish_spec(), "10000-19999:10000-19999/tcp");
        let hundred_k = blocks(100_000).unwrap();
        assert_eq!(hundred_k.len(), 2);
        assert_eq!(
            hundred_k[1].publish_spec(),
            "10.214.4.3:10000-59999:10000-59999/tcp"
        );
        assert_eq!(last_port(&hundred_k), (HOST_IP_2, 59_999));
        assert_eq!(
            hundred_k.iter().map(|b| b.ports().count()).sum::<usize>(),
            100_000
        );
        assert!(blocks(100_001).is_err());
    }
}
