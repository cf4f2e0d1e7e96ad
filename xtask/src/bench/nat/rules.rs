//! Docker 20.10's iptables layout for one bridge network with published ports, as one
//! iptables-restore file: what `dockerd` would have written for `-p` mappings onto one container.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::layout::Block;

pub struct Network<'a> {
    pub bridge: &'a str,
    pub subnet: &'a str,
    pub container_ip: Ipv4Addr,
    /// Every host port maps onto this one container port, so one listener serves all of them.
    pub container_port: u16,
}

/// filter and nat tables with one DNAT rule per published port in the nat DOCKER chain.
///
/// Docker also writes one filter ACCEPT (and one hairpin MASQUERADE) rule per mapping; with every
/// mapping onto one container port those are identical and the first one matches, so they are
/// written once: the baseline is the cheapest honest form of Docker's rules.
pub fn docker_ruleset(net: &Network, blocks: &[Block]) -> String {
    let Network {
        bridge,
        subnet,
        container_ip,
        container_port,
    } = net;
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
-A FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o {bridge} -j DOCKER
-A FORWARD -i {bridge} ! -o {bridge} -j ACCEPT
-A FORWARD -i {bridge} -o {bridge} -j ACCEPT
-A DOCKER -d {container_ip}/32 ! -i {bridge} -o {bridge} -p tcp -m tcp --dport {container_port} -j ACCEPT
-A DOCKER-ISOLATION-STAGE-1 -i {bridge} ! -o {bridge} -j DOCKER-ISOLATION-STAGE-2
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-ISOLATION-STAGE-2 -o {bridge} -j DROP
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
-A POSTROUTING -s {subnet} ! -o {bridge} -j MASQUERADE
-A POSTROUTING -s {container_ip}/32 -d {container_ip}/32 -p tcp -m tcp --dport {container_port} -j MASQUERADE
-A DOCKER -i {bridge} -j RETURN
"
    );
    for block in blocks {
        let destination = block
            .host_ip
            .map_or(String::new(), |ip| format!("-d {ip}/32 "));
        for port in block.ports() {
            let _ = writeln!(
                text,
                "-A DOCKER {destination}! -i {bridge} -p tcp -m tcp --dport {port} \
                 -j DNAT --to-destination {container_ip}:{container_port}"
            );
        }
    }
    text.push_str("COMMIT\n");
    text
}

#[cfg(test)]
mod tests {
    use super::super::layout::blocks;
    use super::*;

    #[test]
    fn one_dnat_rule_per_port_in_order() {
        let net = Network {
            bridge: "br0",
            subnet: "10.214.5.0/24",
            container_ip: Ipv4Addr::new(10, 214, 5, 2),
            container_port: 8080,
        };
        let text = docker_ruleset(&net, &blocks(100_000).unwrap());
        let dnat: Vec<&str> = text.lines().filter(|l| l.contains("DNAT")).collect();
        assert_eq!(dnat.len(), 100_000);
        assert_eq!(
            dnat[0],
            "-A DOCKER -d 10.214.4.1/32 ! -i br0 -p tcp -m tcp --dport 10000 -j DNAT --to-destination 10.214.5.2:8080"
        );
        assert!(dnat[99_999]
            .starts_with("-A DOCKER -d 10.214.4.3/32 ! -i br0 -p tcp -m tcp --dport 59999 "));
        assert!(text.ends_with("COMMIT\n"));
    }
}
