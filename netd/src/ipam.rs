//! IP address management: choosing subnets from the default pools and handing out
//! addresses. Pure functions over the current state, so they are easy to test and a
//! crash can never leave an allocation behind (allocations are derived from endpoints).
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::model::IpamPool;

/// Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s.
pub fn default_pools() -> impl Iterator<Item = Ipv4Net> {
    let wide = (17..=31u8).map(|b| Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap());
    let narrow = "192.168.0.0/16"
        .parse::<Ipv4Net>()
        .unwrap()
        .subnets(20)
        .unwrap();
    wide.chain(narrow)
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first default pool that overlaps nothing in `taken` (netd's subnets and every prefix
/// on the host's interfaces and routes).
pub fn choose_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    default_pools().find(|pool| !taken.iter().any(|t| overlaps(pool, t)))
}

/// What the user asked for, before validation.
#[derive(Clone, Debug, Default)]
pub struct PoolRequest {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<Ipv4Net>,
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// Validates a request against the networks netd already has and fills in the defaults.
/// `host_prefixes` only constrains automatic subnets, as in Docker.
pub fn plan_pool(
    req: &PoolRequest,
    netd_subnets: &[Ipv4Net],
    host_prefixes: &[Ipv4Net],
) -> Result<IpamPool, String> {
    let subnet = match req.subnet {
        Some(subnet) => {
            if subnet.network() != subnet.addr() {
                return Err(format!(
                    "invalid subnet {subnet}: host bits are set (did you mean {}?)",
                    subnet.trunc()
                ));
            }
            if subnet.prefix_len() > 30 {
                return Err(format!(
                    "invalid subnet {subnet}: too small, a network needs at least a /30"
                ));
            }
            if let Some(other) = netd_subnets.iter().find(|t| overlaps(&subnet, t)) {
                return Err(format!(
                    "invalid pool request: subnet {subnet} overlaps with {other}, in use by another network"
                ));
            }
            subnet
        }
        None => {
            if req.gateway.is_some() || req.ip_range.is_some() {
                return Err("--gateway and --ip-range need --subnet".into());
            }
            let taken: Vec<Ipv4Net> = netd_subnets.iter().chain(host_prefixes).copied().collect();
            choose_subnet(&taken)
                .ok_or("could not find an available, non-overlapping IPv4 address pool")?
        }
    };
    let is_host =
        |ip: Ipv4Addr| subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast();
    let gateway = match req.gateway {
        Some(gw) if !is_host(gw) => {
            return Err(format!(
                "invalid gateway {gw}: not a usable address of subnet {subnet}"
            ))
        }
        Some(gw) => gw,
        None => subnet.hosts().next().expect("a /30 or wider has hosts"),
    };
    if let Some(range) = req.ip_range {
        if !subnet.contains(&range) {
            return Err(format!(
                "invalid ip-range {range}: not inside subnet {subnet}"
            ));
        }
    }
    for (name, ip) in &req.aux_addresses {
        if !subnet.contains(ip) {
            return Err(format!(
                "invalid aux-address {name}={ip}: not inside subnet {subnet}"
            ));
        }
    }
    Ok(IpamPool {
        subnet,
        gateway,
        ip_range: req.ip_range,
        aux_addresses: req.aux_addresses.clone(),
    })
}

/// Addresses no endpoint may take: network, broadcast, gateway and aux addresses.
fn reserved(pool: &IpamPool, ip: Ipv4Addr) -> bool {
    ip == pool.subnet.network()
        || ip == pool.subnet.broadcast()
        || ip == pool.gateway
        || pool.aux_addresses.values().any(|aux| *aux == ip)
}

/// The lowest free address of the pool's range (or subnet).
pub fn allocate(pool: &IpamPool, used: &BTreeSet<Ipv4Addr>) -> Result<Ipv4Addr, String> {
    let range = pool.ip_range.unwrap_or(pool.subnet);
    let first = u32::from(range.network());
    let last = u32::from(range.broadcast());
    (first..=last)
        .map(Ipv4Addr::from)
        .find(|ip| pool.subnet.contains(ip) && !reserved(pool, *ip) && !used.contains(ip))
        .ok_or_else(|| format!("no available IPv4 address in {range}"))
}

/// Checks a user-chosen address (`--ip`): inside the subnet, not reserved, not in use.
pub fn check_static(
    pool: &IpamPool,
    ip: Ipv4Addr,
    used: &BTreeSet<Ipv4Addr>,
) -> Result<(), String> {
    if !pool.subnet.contains(&ip) {
        return Err(format!(
            "invalid address {ip}: not inside subnet {}",
            pool.subnet
        ));
    }
    if reserved(pool, ip) {
        return Err(format!(
            "invalid address {ip}: reserved (network, broadcast, gateway or aux address)"
        ));
    }
    if used.contains(&ip) {
        return Err(format!("address {ip} is already in use"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn automatic_subnets_skip_host_and_netd_prefixes() {
        assert_eq!(choose_subnet(&[]), Some(net("172.17.0.0/16")));
        // A host running Docker has 172.17.0.0/16 on docker0; a route covers 172.18.5.0/24.
        let taken = [net("172.17.0.0/16"), net("172.18.5.0/24")];
        assert_eq!(choose_subnet(&taken), Some(net("172.19.0.0/16")));
        // A wide host route swallows all of 172.16.0.0/12: fall through to 192.168/20s.
        assert_eq!(
            choose_subnet(&[net("172.16.0.0/12"), net("192.168.0.0/20")]),
            Some(net("192.168.16.0/20"))
        );
    }

    #[test]
    fn plan_fills_defaults_and_rejects_bad_requests() {
        let req = PoolRequest {
            subnet: Some(net("10.1.0.0/24")),
            ..Default::default()
        };
        let pool = plan_pool(&req, &[], &[]).unwrap();
        assert_eq!(pool.gateway, ip("10.1.0.1"));

        let cases: Vec<(PoolRequest, &str)> = vec![
            (
                PoolRequest {
                    subnet: Some(net("10.1.0.5/24")),
                    ..Default::default()
                },
                "host bits",
            ),
            (
                PoolRequest {
                    subnet: Some(net("10.2.0.0/16")),
                    ..Default::default()
                },
                "overlaps",
            ),
            (
                PoolRequest {
                    subnet: Some(net("10.9.0.0/24")),
                    gateway: Some(ip("10.9.1.1")),
                    ..Default::default()
                },
                "invalid gateway",
            ),
            (
                PoolRequest {
                    subnet: Some(net("10.9.0.0/24")),
                    gateway: Some(ip("10.9.0.255")),
                    ..Default::default()
                },
                "invalid gateway",
            ),
            (
                PoolRequest {
                    subnet: Some(net("10.9.0.0/24")),
                    ip_range: Some(net("10.9.0.0/23")),
                    ..Default::default()
                },
                "invalid ip-range",
            ),
            (
                PoolRequest {
                    subnet: Some(net("10.9.0.0/24")),
                    aux_addresses: [("x".to_string(), ip("10.8.0.1"))].into(),
                    ..Default::default()
                },
                "invalid aux-address",
            ),
            (
                PoolRequest {
                    gateway: Some(ip("10.9.0.1")),
                    ..Default::default()
                },
                "need --subnet",
            ),
        ];
        for (req, want) in cases {
            let err = plan_pool(&req, &[net("10.2.3.0/24")], &[]).unwrap_err();
            assert!(err.contains(want), "{req:?}: {err}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn allocation_skips_reserved_and_used_and_honours_the_range() {
        let pool = IpamPool {
            subnet: net("10.1.0.0/24"),
            gateway: ip("10.1.0.1"),
            ip_range: None,
            aux_addresses: [("router".to_string(), ip("10.1.0.2"))].into(),
        };
        let mut used = BTreeSet::new();
        assert_eq!(allocate(&pool, &used).unwrap(), ip("10.1.0.3"));
        used.insert(ip("10.1.0.3"));
        assert_eq!(allocate(&pool, &used).unwrap(), ip("10.1.0.4"));

        let ranged = IpamPool {
            ip_range: Some(net("10.1.0.128/30")),
            ..pool.clone()
        };
        let mut used = BTreeSet::new();
        for want in ["10.1.0.128", "10.1.0.129", "10.1.0.130", "10.1.0.131"] {
            let got = allocate(&ranged, &used).unwrap();
            assert_eq!(got, ip(want));
            used.insert(got);
        }
        assert!(allocate(&ranged, &used)
            .unwrap_err()
            .contains("no available"));
    }

    #[test]
    fn static_addresses_are_checked() {
        let pool = plan_pool(
            &PoolRequest {
                subnet: Some(net("10.1.0.0/24")),
                ..Default::default()
            },
            &[],
            &[],
        )
        .unwrap();
        let used = BTreeSet::from([ip("10.1.0.9")]);
        assert!(check_static(&pool, ip("10.1.0.10"), &used).is_ok());
        assert!(check_static(&pool, ip("10.1.0.9"), &used)
            .unwrap_err()
            .contains("in use"));
        assert!(check_static(&pool, ip("10.2.0.9"), &used)
            .unwrap_err()
            .contains("not inside"));
        assert!(check_static(&pool, ip("10.1.0.1"), &used)
            .unwrap_err()
            .contains("reserved"));
    }
}
