//! What the kernel of a test's namespaces holds: links, addresses, routes, firewall rules,
//! read with iproute2/iptables/nft the way an operator would look.
use serde_json::Value;

use super::{run, TestHost};

impl TestHost {
    /// `ip -j -n NS args...` parsed.
    pub fn ip_json(&self, ns: &str, args: &[&str]) -> Vec<Value> {
        let mut argv = vec!["-j", "-n", ns];
        argv.extend_from_slice(args);
        let r = run("ip", &argv);
        assert!(r.success(), "{r}");
        let out = r.stdout.trim();
        if out.is_empty() {
            return Vec::new();
        }
        match serde_json::from_str(out) {
            Ok(Value::Array(a)) => a,
            other => panic!("ip -j output is not an array: {other:?}"),
        }
    }

    /// Links of `ns` by name.
    pub fn links(&self, ns: &str) -> Vec<Value> {
        self.ip_json(ns, &["link", "show"])
    }

    /// Names of the links of `ns`.
    pub fn link_names(&self, ns: &str) -> Vec<String> {
        self.links(ns)
            .iter()
            .filter_map(|l| l["ifname"].as_str().map(str::to_string))
            .collect()
    }

    /// netd's host-side veths (`nd...`) in the host netns.
    pub fn host_veths(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .link_names(&self.host_ns)
            .into_iter()
            .filter(|n| n.starts_with("nd"))
            .collect();
        v.sort();
        v
    }

    /// Addresses on lo with label `lo:netd` in the host netns, as `IP/prefix`.
    pub fn gateway_addrs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for link in self.ip_json(&self.host_ns, &["-4", "addr", "show", "dev", "lo"]) {
            for a in link["addr_info"].as_array().into_iter().flatten() {
                if a["label"].as_str() == Some("lo:netd") {
                    out.push(format!(
                        "{}/{}",
                        a["local"].as_str().unwrap_or_default(),
                        a["prefixlen"]
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// Links, addresses, routes and neighbors of the host netns and of `extra` netns, for
    /// failure messages.
    pub fn diagnostics(&self, extra: &[&str]) -> String {
        let mut s = String::new();
        let mut dump = |ns: &str| {
            for what in [
                vec!["-d", "link"],
                vec!["addr"],
                vec!["route"],
                vec!["neigh"],
            ] {
                let mut argv = vec!["-n", ns];
                argv.extend(what.iter().copied());
                let r = run("ip", &argv);
                s.push_str(&format!(
                    "## ip {}\n{}{}",
                    argv.join(" "),
                    r.stdout,
                    r.stderr
                ));
            }
        };
        dump(&self.host_ns);
        for ns in extra {
            dump(ns);
        }
        let r = run("tc", &["-n", &self.host_ns, "filter", "show"]);
        s.push_str(&r.stdout);
        s
    }
}

/// Lines of `iptables-save` and `nft list ruleset` in `ns`, without comments (they carry
/// timestamps). Panics if a tool is missing.
pub fn firewall_rules(ns: &str) -> String {
    let mut s = String::new();
    for argv in [
        vec!["ip", "netns", "exec", ns, "iptables-save"],
        vec!["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
    ] {
        let r = run(argv[0], &argv[1..]);
        assert!(r.success(), "{r}");
        s.push_str(&format!("## {}\n", argv[4..].join(" ")));
        for l in r.stdout.lines().filter(|l| !l.starts_with('#')) {
            s.push_str(l);
            s.push('\n');
        }
    }
    s
}
