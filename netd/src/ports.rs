//! Docker's `-p` syntax: `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp]`,
//! parsed into a [`PortSpec`]; the service turns specs into [`PortMapping`]s once it knows
//! which host ports are free.
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }

    /// The IP protocol number the dataplane keys on.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => netd_common::IPPROTO_TCP,
            Protocol::Udp => netd_common::IPPROTO_UDP,
            Protocol::Sctp => netd_common::IPPROTO_SCTP,
        }
    }
}

/// One published port of an endpoint. `host_ip` 0.0.0.0 means every host address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortMapping {
    /// Whether both cannot be published at once: same protocol and port, and the same
    /// address or either on 0.0.0.0.
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.protocol == other.protocol
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

impl fmt::Display for PortMapping {
    /// As `docker port` prints it: `80/tcp -> 0.0.0.0:8080`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}:{}",
            self.container_port,
            self.protocol.name(),
            self.host_ip,
            self.host_port
        )
    }
}

/// A parsed `-p` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSpec {
    pub host_ip: Ipv4Addr,
    /// `None`: pick a free port for each container port.
    pub host_ports: Option<RangeInclusive<u16>>,
    pub container_ports: RangeInclusive<u16>,
    pub protocol: Protocol,
}

impl PortSpec {
    pub fn parse(spec: &str) -> Result<PortSpec, String> {
        let bad = |why: &str| format!("invalid port spec {spec:?}: {why}");
        let (addr_ports, protocol) = match spec.rsplit_once('/') {
            Some((rest, proto)) => (
                rest,
                match proto {
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    "sctp" => Protocol::Sctp,
                    other => {
                        return Err(bad(&format!(
                            "unknown protocol {other:?} (tcp, udp or sctp)"
                        )))
                    }
                },
            ),
            None => (spec, Protocol::Tcp),
        };
        if addr_ports.contains('[') {
            return Err(bad(
                "IPv6 host addresses are not supported (netd is IPv4 only)",
            ));
        }
        let parts: Vec<&str> = addr_ports.split(':').collect();
        let (host_ip, host_ports, container) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), (!h.is_empty()).then_some(*h), *c),
            _ => {
                return Err(bad(
                    "expected [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]",
                ))
            }
        };
        let host_ip = match host_ip {
            None | Some("") => Ipv4Addr::UNSPECIFIED,
            Some(ip) => ip
                .parse()
                .map_err(|_| bad(&format!("{ip:?} is not an IPv4 address")))?,
        };
        let container_ports = port_range(container).map_err(|e| bad(&e))?;
        let host_ports = host_ports
            .map(port_range)
            .transpose()
            .map_err(|e| bad(&e))?;
        if let Some(host) = &host_ports {
            let (hl, cl) = (range_len(host), range_len(&container_ports));
            if hl != cl && cl != 1 {
                return Err(bad(&format!(
                    "host port range {}-{} and container port range {}-{} differ in length",
                    host.start(),
                    host.end(),
                    container_ports.start(),
                    container_ports.end()
                )));
            }
        }
        if protocol == Protocol::Sctp && host_ports.as_ref().is_some_and(|h| h != &container_ports)
        {
            // SCTP's CRC32c covers the ports and cannot be patched incrementally.
            return Err(bad("sctp ports must be published on the same host port"));
        }
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            protocol,
        })
    }
}

fn range_len(r: &RangeInclusive<u16>) -> u32 {
    u32::from(*r.end()) - u32::from(*r.start()) + 1
}

/// `N` or `N-M`, each in 1..=65535, N <= M.
fn port_range(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (start, end) = match text.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(text)?;
            (p, p)
        }
    };
    if start > end {
        return Err(format!("port range {text:?} ends before it starts"));
    }
    Ok(start..=end)
}

fn port(text: &str) -> Result<u16, String> {
    match text.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is out of range (1-65535)")),
        Err(_) => Err(format!("{text:?} is not a port number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> PortSpec {
        PortSpec::parse(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    #[test]
    fn docker_forms_parse() {
        assert_eq!(ok("80").container_ports, 80..=80);
        assert_eq!(ok("80").host_ports, None);
        assert_eq!(ok("8080:80").host_ports, Some(8080..=8080));
        let s = ok("127.0.0.1:8080:80/udp");
        assert_eq!(
            (s.host_ip, s.protocol),
            (Ipv4Addr::LOCALHOST, Protocol::Udp)
        );
        assert_eq!(ok("127.0.0.1::80").host_ports, None);
        assert_eq!(
            ok("20000-29999:20000-29999").host_ports,
            Some(20000..=29999)
        );
        assert_eq!(ok("8000-8010:80").container_ports, 80..=80);
        assert_eq!(ok("9000:9000/sctp").protocol, Protocol::Sctp);
    }

    #[test]
    fn bad_specs_say_why() {
        for (spec, why) in [
            ("", "not a port number"),
            ("0", "out of range"),
            ("65536", "out of range"),
            ("80/icmp", "unknown protocol"),
            ("1-3:1-2", "differ in length"),
            ("a:b:c:d", "expected"),
            ("300.1.1.1:80:80", "not an IPv4 address"),
            ("90-80", "ends before it starts"),
            ("[::1]:80:80", "IPv6"),
            ("9000:9001/sctp", "same host port"),
        ] {
            let err = PortSpec::parse(spec).expect_err(spec);
            assert!(err.contains(why), "{spec}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn conflicts_follow_wildcards() {
        let m = |ip: [u8; 4], port| PortMapping {
            host_ip: Ipv4Addr::from(ip),
            host_port: port,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        assert!(m([0; 4], 80).conflicts_with(&m([127, 0, 0, 1], 80)));
        assert!(!m([127, 0, 0, 1], 80).conflicts_with(&m([10, 0, 0, 1], 80)));
        assert!(!m([0; 4], 80).conflicts_with(&m([0; 4], 81)));
    }
}
