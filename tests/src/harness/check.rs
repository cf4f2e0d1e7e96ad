//! Whole-state assertions: what the daemon reports (`ls`, `inspect`, `sandbox ls`) must
//! match what is in the kernel (veths, gateway addresses, pinned map entries), with
//! nothing left over.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::TestHost;

/// One `Containers` entry of one network.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub network: String,
    pub sandbox: String,
    pub endpoint_id: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub interface: String,
}

impl Endpoint {
    /// Host-side veth name, per the contract: `nd` + 12 hex chars of the endpoint id.
    pub fn host_veth(&self) -> String {
        format!("nd{}", &self.endpoint_id[..12.min(self.endpoint_id.len())])
    }
}

/// `IPv4Address` of a `Containers` entry.
pub fn ipv4_address(c: &Value) -> &str {
    c["IPv4Address"]
        .as_str()
        .unwrap_or_else(|| panic!("IPv4Address missing in {c}"))
}

/// Every endpoint of every bridge network in `inspect` output (sandboxes on `host` and
/// `none` have no veth and no address of netd's).
pub fn endpoints(nets: &[Value]) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for n in nets
        .iter()
        .filter(|n| n["Driver"].as_str() == Some("bridge"))
    {
        let network = n["Name"].as_str().unwrap_or_default().to_string();
        for c in n["Containers"]
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let cidr = ipv4_address(c);
            let (ip, prefix) = cidr
                .split_once('/')
                .unwrap_or_else(|| panic!("IPv4Address {cidr:?} is not IP/prefix in {c}"));
            out.push(Endpoint {
                network: network.clone(),
                sandbox: c["Name"].as_str().unwrap_or_default().to_string(),
                endpoint_id: c["EndpointID"].as_str().unwrap_or_default().to_string(),
                mac: c["MacAddress"].as_str().unwrap_or_default().to_string(),
                ip: ip
                    .parse()
                    .unwrap_or_else(|e| panic!("IPv4Address {cidr:?}: {e}")),
                prefix: prefix
                    .parse()
                    .unwrap_or_else(|e| panic!("IPv4Address {cidr:?}: {e}")),
                interface: c["Interface"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    out
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap_or_else(|e| panic!("MAC {mac:?}: {e}")))
        .collect();
    v.try_into()
        .unwrap_or_else(|_| panic!("MAC {mac:?} is not 6 bytes"))
}

/// Bridge-driver networks: (name, subnet, gateway).
fn bridge_networks(nets: &[Value]) -> Vec<(String, String, String)> {
    nets.iter()
        .filter(|n| n["Driver"].as_str() == Some("bridge"))
        .map(|n| {
            let cfg = &n["IPAM"]["Config"][0];
            (
                n["Name"].as_str().unwrap_or_default().to_string(),
                cfg["Subnet"].as_str().unwrap_or_default().to_string(),
                cfg["Gateway"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Asserts the daemon's view and the kernel agree and nothing leaked: one host veth per
/// endpoint, one map entry per endpoint, one `lo:netd` gateway per bridge network, and
/// each sandbox holding exactly the interfaces inspect lists.
pub fn assert_consistent(h: &TestHost) {
    if let Err(e) = consistency(h) {
        panic!(
            "state inconsistent: {e}\ninspect: {}\n{}\n{}",
            serde_json::to_string_pretty(&h.inspect_all()).unwrap_or_default(),
            h.diagnostics(&[]),
            h.log_text()
        );
    }
}

/// The check behind [`assert_consistent`]: the first disagreement found, if any.
pub fn consistency(h: &TestHost) -> Result<(), String> {
    let nets = h.inspect_all();
    let eps = endpoints(&nets);
    let bridges = bridge_networks(&nets);

    // Host veths.
    let links = h.links(&h.host_ns);
    let ifindex: BTreeMap<String, u32> = links
        .iter()
        .filter_map(|l| {
            Some((
                l["ifname"].as_str()?.to_string(),
                l["ifindex"].as_u64()? as u32,
            ))
        })
        .collect();
    let veths: BTreeSet<String> = ifindex
        .keys()
        .filter(|n| n.starts_with("nd"))
        .cloned()
        .collect();
    let want: BTreeSet<String> = eps.iter().map(Endpoint::host_veth).collect();
    if veths != want {
        return Err(format!(
            "host veths {veths:?} != endpoints' veths {want:?} (leaked or missing veth)"
        ));
    }
    let ep_ifindex: BTreeSet<u32> = want.iter().map(|n| ifindex[n]).collect();

    // Gateways on lo.
    let gws: BTreeSet<String> = h.gateway_addrs().into_iter().collect();
    let want_gws: BTreeSet<String> = bridges.iter().map(|(_, _, g)| format!("{g}/32")).collect();
    if gws != want_gws {
        return Err(format!(
            "lo:netd addresses {gws:?} != gateways of bridge networks {want_gws:?}"
        ));
    }

    // Maps.
    let maps = h.maps();
    let by_ip = maps.endpoints_by_ip();
    let ips: BTreeSet<Ipv4Addr> = by_ip.keys().copied().collect();
    let want_ips: BTreeSet<Ipv4Addr> = eps.iter().map(|e| e.ip).collect();
    if ips != want_ips {
        return Err(format!(
            "EP_BY_IP keys {ips:?} != endpoint IPs {want_ips:?}"
        ));
    }
    for e in &eps {
        let info = by_ip[&e.ip];
        let veth_ifindex = ifindex[&e.host_veth()];
        if info.host_ifindex != veth_ifindex
            || info.mac != mac_bytes(&e.mac)
            || info.ip != e.ip.octets()
        {
            return Err(format!(
                "EP_BY_IP[{}] = {info:?} does not match endpoint {e:?} (veth ifindex {veth_ifindex})",
                e.ip
            ));
        }
    }
    let by_ifindex: BTreeSet<u32> = maps.endpoints_by_ifindex().keys().copied().collect();
    if by_ifindex != ep_ifindex {
        return Err(format!(
            "EP_BY_IFINDEX keys {by_ifindex:?} != endpoint veth ifindexes {ep_ifindex:?}"
        ));
    }
    let mut members: Vec<u32> = maps.members().iter().map(|(_, v)| *v).collect();
    members.sort();
    let mut want_members: Vec<u32> = ep_ifindex.iter().copied().collect();
    want_members.sort();
    if members != want_members {
        return Err(format!(
            "MEMBERS values {members:?} != endpoint veth ifindexes {want_members:?}"
        ));
    }
    let networks = maps.networks();
    let bridge_gws: BTreeSet<[u8; 4]> = bridges
        .iter()
        .filter_map(|(_, _, g)| g.parse::<Ipv4Addr>().ok().map(|a| a.octets()))
        .collect();
    if networks.len() > bridges.len()
        || networks
            .values()
            .any(|n| !bridge_gws.contains(&n.gateway_ip))
    {
        return Err(format!(
            "NETWORKS map {networks:?} has entries beyond the bridge networks {bridges:?}"
        ));
    }
    for info in by_ip.values() {
        if !networks.contains_key(&info.net_id) {
            return Err(format!(
                "endpoint {info:?} has a net_id with no NETWORKS entry"
            ));
        }
    }
    let subnets = maps.subnets();
    let bridge_subnets: BTreeSet<String> = bridges.iter().map(|(_, s, _)| s.clone()).collect();
    let map_subnets: Vec<String> = subnets.iter().map(|(a, p, _)| format!("{a}/{p}")).collect();
    if map_subnets.len() > bridges.len() || map_subnets.iter().any(|s| !bridge_subnets.contains(s))
    {
        return Err(format!(
            "SUBNETS map {map_subnets:?} has entries beyond the bridge networks' subnets {bridge_subnets:?}"
        ));
    }

    // Sandboxes.
    for sb in h.sandboxes() {
        let name = sb["Name"].as_str().unwrap_or_default();
        let path = sb["Path"].as_str().unwrap_or_default();
        let mine: Vec<&Endpoint> = eps.iter().filter(|e| e.sandbox == name).collect();
        let mut nets_listed: Vec<String> = sb["Networks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        nets_listed.sort();
        let mut nets_inspect: Vec<String> = nets
            .iter()
            .filter(|n| {
                n["Containers"]
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                    .any(|c| c["Name"].as_str() == Some(name))
            })
            .filter_map(|n| n["Name"].as_str().map(str::to_string))
            .collect();
        nets_inspect.sort();
        if nets_listed != nets_inspect {
            return Err(format!(
                "sandbox ls says {name} is on {nets_listed:?}, inspect says {nets_inspect:?}"
            ));
        }
        let r = super::run(
            "nsenter",
            &[&format!("--net={path}"), "ip", "-j", "-4", "addr"],
        );
        if !r.success() {
            return Err(format!("sandbox {name} at {path}: {r}"));
        }
        let addrs: Vec<Value> = serde_json::from_str(r.stdout.trim()).unwrap_or_default();
        let eths: BTreeMap<String, Vec<String>> = addrs
            .iter()
            .filter_map(|l| {
                let n = l["ifname"].as_str()?;
                n.starts_with("eth").then(|| {
                    let a = l["addr_info"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| {
                            format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"])
                        })
                        .collect();
                    (n.to_string(), a)
                })
            })
            .collect();
        if mine.iter().all(|e| e.interface.is_empty()) {
            // Docker names a container's interfaces itself, after Join: netd knows only
            // their addresses.
            let mut have: Vec<&String> = eths.values().flatten().collect();
            let mut want: Vec<String> = mine
                .iter()
                .map(|e| format!("{}/{}", e.ip, e.prefix))
                .collect();
            have.sort();
            want.sort();
            if have
                .iter()
                .map(|a| a.as_str())
                .ne(want.iter().map(String::as_str))
            {
                return Err(format!(
                    "sandbox {name}: addresses {have:?} != inspect's {want:?} (leaked or missing sandbox-side veth)"
                ));
            }
            continue;
        }
        let want: BTreeMap<String, Vec<String>> = mine
            .iter()
            .map(|e| (e.interface.clone(), vec![format!("{}/{}", e.ip, e.prefix)]))
            .collect();
        if eths != want {
            return Err(format!(
                "sandbox {name}: interfaces {eths:?} != inspect's {want:?} (leaked or missing sandbox-side veth)"
            ));
        }
    }
    Ok(())
}

/// Everything a bad input must leave unchanged, as one JSON value.
pub fn snapshot(h: &TestHost) -> Value {
    let maps = h.maps();
    json!({
        "ls": h.ls_json(),
        "inspect": h.inspect_all(),
        "sandboxes": h.sandboxes(),
        "host_veths": h.host_veths(),
        "gateways": h.gateway_addrs(),
        "ep_by_ip": maps.endpoints_by_ip().keys().map(|a| a.to_string()).collect::<Vec<_>>(),
        "ep_by_ifindex": maps.endpoints_by_ifindex().keys().copied().collect::<Vec<_>>(),
        "members": maps.members().len(),
        "networks": maps.networks().len(),
        "subnets": maps.subnets().iter().map(|(a, p, _)| format!("{a}/{p}")).collect::<Vec<_>>(),
    })
}

/// Panics with both sides printed if two snapshots differ.
pub fn assert_same(before: &Value, after: &Value, what: &str) {
    if before != after {
        panic!(
            "{what} changed state\n--- before ---\n{}\n--- after ---\n{}",
            serde_json::to_string_pretty(before).unwrap_or_default(),
            serde_json::to_string_pretty(after).unwrap_or_default()
        );
    }
}
