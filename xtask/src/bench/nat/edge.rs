//! The part both NAT topologies share: an "outside" namespace joined to the "host" namespace by
//! one veth pair, the host's uplink. The outside has only that link and no default route, so
//! nothing it sends can leave it; the host's default route points at the outside namespace.

use anyhow::Result;

use super::layout::{HOST_IP, HOST_IP_2, LINK_PREFIX, OUTSIDE_IP, UPLINK};
use crate::cmd;
use crate::netns::Netns;

/// Creates `UPLINK` in `host` with its peer `eth0` moved straight into `outside`.
pub fn link_outside(host: &Netns, outside: &Netns) -> Result<()> {
    cmd::run(&mut host.exec(
        "ip",
        [
            "link",
            "add",
            UPLINK,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            outside.name(),
        ],
    ))?;
    for ip in [HOST_IP, HOST_IP_2] {
        cmd::run(&mut host.exec(
            "ip",
            ["addr", "add", &format!("{ip}/{LINK_PREFIX}"), "dev", UPLINK],
        ))?;
    }
    cmd::run(&mut outside.exec(
        "ip",
        [
            "addr",
            "add",
            &format!("{OUTSIDE_IP}/{LINK_PREFIX}"),
            "dev",
            "eth0",
        ],
    ))?;
    cmd::run(&mut host.exec("ip", ["link", "set", UPLINK, "up"]))?;
    cmd::run(&mut outside.exec("ip", ["link", "set", "eth0", "up"]))?;
    cmd::run(&mut host.exec(
        "ip",
        [
            "route",
            "add",
            "default",
            "via",
            &OUTSIDE_IP.to_string(),
            "dev",
            UPLINK,
        ],
    ))
}

/// Resident memory of a process in MiB, from /proc (None once it is gone).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
