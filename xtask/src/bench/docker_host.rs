//! A Docker host without Docker, as the baselines build it inside their "host" namespace:
//! a Linux bridge with forwarding on, containers hung off it, br_netfilter, and Docker
//! 20.10's iptables rules for the bridge network.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use anyhow::Result;

use crate::cmd;
use crate::netns::Netns;

/// The bridge (docker0 on a Docker host).
pub const BRIDGE: &str = "br0";

/// Forwarding on (Docker turns it on when it starts; here only inside `host`), and the
/// bridge up with the network's gateway address.
pub fn create_bridge(host: &Netns, gateway: &str) -> Result<()> {
    cmd::run(&mut host.exec("sysctl", ["-w", "net.ipv4.ip_forward=1"]))?;
    cmd::run(&mut host.exec("ip", ["link", "add", BRIDGE, "type", "bridge"]))?;
    cmd::run(&mut host.exec(
        "ip",
        ["addr", "add", &format!("{gateway}/24"), "dev", BRIDGE],
    ))?;
    cmd::run(&mut host.exec("ip", ["link", "set", BRIDGE, "up"]))
}

/// A container: veth `port` on the bridge, `eth0` in `sandbox` with `ip`/24 and a default
/// route through the gateway.
pub fn attach(host: &Netns, port: &str, sandbox: &Netns, ip: &str, gateway: &str) -> Result<()> {
    host.add_veth_to(port, sandbox)?;
    cmd::run(&mut host.exec("ip", ["link", "set", port, "master", BRIDGE, "up"]))?;
    cmd::run(&mut sandbox.exec("ip", ["addr", "add", &format!("{ip}/24"), "dev", "eth0"]))?;
    cmd::run(&mut sandbox.exec("ip", ["link", "set", "eth0", "up"]))?;
    cmd::run(&mut sandbox.exec("ip", ["route", "add", "default", "via", gateway]))
}

/// Lets iptables see bridged frames, as on a Docker host. br_netfilter is built into this
/// kernel (no modules) and its sysctls are per namespace; false where it is missing.
pub fn enable_bridge_netfilter(host: &Netns) -> Result<bool> {
    if !cmd::succeeds(&mut host.exec("test", ["-d", "/proc/sys/net/bridge"])) {
        return Ok(false);
    }
    cmd::run(&mut host.exec("sysctl", ["-w", "net.bridge.bridge-nf-call-iptables=1"]))?;
    Ok(true)
}

/// The container that host ports are published to: every host port maps onto its one
/// port, so one listener serves all of them.
pub struct Published {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// Docker's filter and nat tables for the bridge network `subnet`, as one iptables-restore
/// file; with `published`, one DNAT rule per `(host address, host port)` of `dnat`.
///
/// Docker also writes one filter ACCEPT (and one hairpin MASQUERADE) rule per mapping; with
/// every mapping onto one container port those are identical and the first one matches, so
/// they are written once: the baseline is the cheapest honest form of Docker's rules.
pub fn ruleset(
    subnet: &str,
    published: Option<&Published>,
    dnat: impl IntoIterator<Item = (Option<Ipv4Addr>, u16)>,
) -> String {
    let accept = published.map_or(String::new(), |p| {
        format!(
            "-A DOCKER -d {}/32 ! -i {BRIDGE} -o {BRIDGE} -p tcp -m tcp --dport {} -j ACCEPT\n",
            p.ip, p.port
        )
    });
    let hairpin = published.map_or(String::new(), |p| {
        format!(
            "-A POSTROUTING -s {ip}/32 -d {ip}/32 -p tcp -m tcp --dport {} -j MASQUERADE\n",
            p.port,
            ip = p.ip
        )
    });
    let mut text = format!(
        "*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-ISOLATION-STAGE-2 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o {BRIDGE} -j DOCKER
-A FORWARD -i {BRIDGE} ! -o {BRIDGE} -j ACCEPT
-A FORWARD -i {BRIDGE} -o {BRIDGE} -j ACCEPT
{accept}-A DOCKER-ISOLATION-STAGE-1 -i {BRIDGE} ! -o {BRIDGE} -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o {BRIDGE} -j DROP
-A DOCKER-ISOLATION-STAGE-2 -j RETURN
-A DOCKER-USER -j RETURN
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s {subnet} ! -o {BRIDGE} -j MASQUERADE
{hairpin}-A DOCKER -i {BRIDGE} -j RETURN
"
    );
    if let Some(p) = published {
        for (host_ip, port) in dnat {
            let destination = host_ip.map_or(String::new(), |ip| format!("-d {ip}/32 "));
            let _ = writeln!(
                text,
                "-A DOCKER {destination}! -i {BRIDGE} -p tcp -m tcp --dport {port} \
                 -j DNAT --to-destination {}:{}",
                p.ip, p.port
            );
        }
    }
    text.push_str("COMMIT\n");
    text
}
