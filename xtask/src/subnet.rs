//! Picking an IPv4 /24 that does not collide with anything the host already routes.

use std::net::Ipv4Addr;

use anyhow::{bail, Result};

use crate::cmd;

/// Route types `ip route` prints before the prefix (e.g. `local 127.0.0.1 dev lo ...`).
const ROUTE_TYPES: &[&str] = &[
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "anycast",
    "blackhole",
    "unreachable",
    "prohibit",
    "throw",
    "nat",
];

/// The first `a.b.N.0/24` (N = 0..=255) that overlaps no route (any table) and no address of this netns.
pub fn free_host_subnet(base: [u8; 2]) -> Result<String> {
    let routes = cmd::capture(&mut cmd::command(
        "ip",
        ["-4", "route", "show", "table", "all"],
    ))?;
    let addresses = cmd::capture(&mut cmd::command("ip", ["-4", "-o", "addr", "show"]))?;
    let mut taken: Vec<(u32, u8)> = routes.lines().filter_map(route_prefix).collect();
    taken.extend(addresses.lines().filter_map(address_prefix));
    for third in 0..=255u8 {
        let candidate = (u32::from(Ipv4Addr::new(base[0], base[1], third, 0)), 24);
        if !taken.iter().any(|&prefix| overlaps(prefix, candidate)) {
            return Ok(format!("{}.{}.{third}.0/24", base[0], base[1]));
        }
    }
    bail!(
        "every {}.{}.N.0/24 overlaps a host route or address",
        base[0],
        base[1]
    )
}

fn route_prefix(line: &str) -> Option<(u32, u8)> {
    let mut words = line.split_whitespace();
    let mut first = words.next()?;
    if ROUTE_TYPES.contains(&first) {
        first = words.next()?;
    }
    // `default` covers everything, but the demo traffic never leaves its namespaces, so a
    // default route is no reason to avoid a subnet.
    parse_prefix(first)
}

fn address_prefix(line: &str) -> Option<(u32, u8)> {
    // "1: lo    inet 127.0.0.1/8 scope host lo ..."
    let cidr = line
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    parse_prefix(cidr)
}

fn parse_prefix(text: &str) -> Option<(u32, u8)> {
    let (address, length) = match text.split_once('/') {
        Some((address, length)) => (address, length.parse().ok()?),
        None => (text, 32),
    };
    let address: Ipv4Addr = address.parse().ok()?;
    (length <= 32).then_some((u32::from(address), length))
}

fn overlaps((a, a_len): (u32, u8), (b, b_len): (u32, u8)) -> bool {
    let shorter = a_len.min(b_len);
    let mask = if shorter == 0 {
        0
    } else {
        u32::MAX << (32 - shorter)
    };
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_overlapping_prefixes() {
        assert!(overlaps(
            parse_prefix("10.213.0.0/16").unwrap(),
            parse_prefix("10.213.4.0/24").unwrap()
        ));
        assert!(overlaps(
            parse_prefix("10.213.4.7").unwrap(),
            parse_prefix("10.213.4.0/24").unwrap()
        ));
        assert!(!overlaps(
            parse_prefix("10.213.5.0/24").unwrap(),
            parse_prefix("10.213.4.0/24").unwrap()
        ));
        assert_eq!(
            route_prefix("local 10.213.0.1 dev lo table local"),
            parse_prefix("10.213.0.1/32")
        );
        assert_eq!(route_prefix("default via 10.0.0.1 dev eth0"), None);
    }
}
