//! ADD's result, shaped for the configuration's CNI version.
use serde_json::{json, Value};

use crate::api::types::Connected;

/// interfaces (host veth, then the container's), ips, routes and dns.
pub fn add_result(version: &str, connected: &Connected, dns: Option<&Value>) -> Value {
    let mut ip = json!({
        "address": connected.ipv4_address,
        "gateway": connected.gateway,
        "interface": 1,
    });
    // Before 1.0.0 every IP says its family.
    if matches!(version, "0.3.0" | "0.3.1" | "0.4.0") {
        ip["version"] = json!("4");
    }
    json!({
        "cniVersion": version,
        "interfaces": [
            { "name": connected.host_interface, "mac": connected.host_mac_address },
            {
                "name": connected.interface,
                "mac": connected.mac_address,
                "sandbox": connected.sandbox,
            },
        ],
        "ips": [ip],
        "routes": [{ "dst": "0.0.0.0/0", "gw": connected.gateway }],
        "dns": dns.cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connected() -> Connected {
        Connected {
            endpoint_id: "e".into(),
            interface: "eth0".into(),
            ipv4_address: "10.1.0.2/24".into(),
            mac_address: "02:42:0a:01:00:02".into(),
            ports: vec![],
            gateway: "10.1.0.1".into(),
            host_interface: "nd0123456789ab".into(),
            host_mac_address: "02:4e:0a:01:00:01".into(),
            sandbox: "/run/netns/x".into(),
        }
    }

    #[test]
    fn results_follow_the_version() {
        let old = add_result("0.4.0", &connected(), None);
        assert_eq!(old["ips"][0]["version"], "4");
        let new = add_result(
            "1.1.0",
            &connected(),
            Some(&json!({"nameservers": ["10.1.0.1"]})),
        );
        assert!(new["ips"][0].get("version").is_none());
        assert_eq!(new["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(new["dns"]["nameservers"][0], "10.1.0.1");
        assert_eq!(new["routes"][0]["gw"], "10.1.0.1");
    }
}
