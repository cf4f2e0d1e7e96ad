//! The world beyond the uplink: an "outside" namespace behind a veth whose host end is the
//! daemon's `--uplink`, and the CLI views of what crosses it (`port ls`, `conntrack ls`,
//! the NAT counters of `stats`).
//!
//! Layout, per test (`o` = the test's octet):
//!
//! ```text
//!   host netns <id>-h                       outside netns <id>-o
//!   uplink0 10.o.250.1/24  <--- veth --->   out0 10.o.250.2/24
//!   default via 10.o.250.2                  (no default route: it only knows 10.o.250.0/24)
//! ```
//!
//! A second outside (`<id>-o1`, `uplink1`, 10.o.251.0/24) is reached through its connected
//! route only. Traffic never leaves these namespaces: an outside has no other link.
use serde_json::Value;

use super::TestHost;

/// The `n` of `10.<octet>.<n>.0/24` that the first uplink's link uses (the k-th uses
/// `n + k`); never handed out to a network.
pub const UPLINK_NET: u8 = 250;
/// Name of the first uplink (host end of the veth) in the host netns. Not `nd...`: the
/// harness counts those as netd's endpoint veths.
pub const UPLINK_IF: &str = "uplink0";
/// At most this many outside namespaces per test.
const MAX_OUTSIDES: usize = 4;
/// Name of the outside end of the veth, in the outside netns.
const OUTSIDE_IF: &str = "out0";

/// The outside namespace of a test.
#[derive(Clone, Debug)]
pub struct Outside {
    /// Netns name, `<id>-o`.
    pub ns: String,
    /// The uplink in the host netns (what the daemon gets as `--uplink`).
    pub uplink: String,
    /// The uplink's address, `10.<octet>.250.1`: the host's address as the outside sees it.
    pub host_ip: String,
    /// The outside end's address, `10.<octet>.250.2`.
    pub ip: String,
}

impl TestHost {
    /// Creates an outside namespace and its uplink veth and addresses both ends. The first
    /// one (`uplink0`, 10.<octet>.250.0/24) also gets `default via 10.<octet>.250.2` in the
    /// host netns; the k-th (`uplink<k>`, 10.<octet>.<250+k>.0/24) only its connected route.
    /// Call before starting the daemon.
    pub fn add_outside(&mut self) -> Outside {
        let k = self.outsides.len();
        assert!(
            k < MAX_OUTSIDES,
            "at most {MAX_OUTSIDES} outside namespaces"
        );
        let ns = if k == 0 {
            format!("{}-o", self.id)
        } else {
            format!("{}-o{k}", self.id)
        };
        let uplink = format!("uplink{k}");
        let net = UPLINK_NET + k as u8;
        let host_ip = format!("10.{}.{net}.1", self.octet);
        let ip = format!("10.{}.{net}.2", self.octet);
        self.must(&["ip", "netns", "add", &ns]);
        self.must(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        self.must(&[
            "ip",
            "-n",
            &self.host_ns,
            "link",
            "add",
            &uplink,
            "type",
            "veth",
            "peer",
            "name",
            OUTSIDE_IF,
            "netns",
            &ns,
        ]);
        let host_cidr = format!("{host_ip}/24");
        let out_cidr = format!("{ip}/24");
        self.must(&[
            "ip",
            "-n",
            &self.host_ns,
            "addr",
            "add",
            &host_cidr,
            "dev",
            &uplink,
        ]);
        self.must(&["ip", "-n", &ns, "addr", "add", &out_cidr, "dev", OUTSIDE_IF]);
        self.must(&["ip", "-n", &ns, "link", "set", OUTSIDE_IF, "up"]);
        self.must(&["ip", "-n", &self.host_ns, "link", "set", &uplink, "up"]);
        if k == 0 {
            self.must(&[
                "ip",
                "-n",
                &self.host_ns,
                "route",
                "add",
                "default",
                "via",
                &ip,
                "dev",
                &uplink,
            ]);
        }
        let o = Outside {
            ns,
            uplink,
            host_ip,
            ip,
        };
        self.outsides.push(o.clone());
        o
    }

    /// A host netns with an outside namespace and a daemon started with
    /// `--uplink uplink0` plus `extra` daemon arguments.
    pub fn with_uplink(extra: &[&str]) -> (TestHost, Outside) {
        let mut h = TestHost::new();
        let o = h.add_outside();
        let mut args = vec!["--uplink", UPLINK_IF];
        args.extend_from_slice(extra);
        h.start_daemon_with_args(&args);
        (h, o)
    }

    /// The first outside namespace; panics if [`TestHost::add_outside`] did not run.
    pub fn outside(&self) -> &Outside {
        self.outsides.first().expect("no outside namespace")
    }

    /// In the first outside netns: `ip route add <subnet> via 10.<octet>.250.1`, so it can
    /// answer a sandbox whose network does not masquerade.
    pub fn route_back_from_outside(&self, subnet: &str) {
        let o = self.outside();
        self.must(&["ip", "-n", &o.ns, "route", "add", subnet, "via", &o.host_ip]);
    }

    /// `netd port ls [NETNS]` as text.
    pub fn port_ls(&self, netns: Option<&str>) -> String {
        let mut args = vec!["port", "ls"];
        args.extend(netns);
        self.netd_ok(&args)
    }

    /// `netd port ls [NETNS] --format json`.
    pub fn port_ls_json(&self, netns: Option<&str>) -> Vec<Value> {
        let mut args = vec!["port", "ls", "--format", "json"];
        args.extend(netns);
        let out = self.netd_ok(&args);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            other => panic!(
                "contract: `netd {}` is a JSON array: {other:?}\n{out}",
                args.join(" ")
            ),
        }
    }

    /// `netd conntrack ls --format json`.
    pub fn conntrack(&self) -> Vec<Value> {
        let out = self.netd_ok(&["conntrack", "ls", "--format", "json"]);
        match serde_json::from_str(&out) {
            Ok(Value::Array(a)) => a,
            other => {
                panic!(
                    "contract: `netd conntrack ls --format json` is a JSON array: {other:?}\n{out}"
                )
            }
        }
    }

    /// The NAT LRU eviction count from `netd stats --format json`: the rows whose kind or
    /// reason names evictions. Panics (with the stats) if there is no such row.
    pub fn nat_evictions(&self) -> u64 {
        let stats = self.stats();
        let rows: Vec<&Value> = stats
            .iter()
            .filter(|e| {
                ["Kind", "Reason", "Name", "Counter"].iter().any(|k| {
                    e[*k]
                        .as_str()
                        .is_some_and(|s| s.to_ascii_lowercase().contains("evict"))
                })
            })
            .collect();
        assert!(
            !rows.is_empty(),
            "contract: `netd stats` shows NAT counters (created, LRU evictions); no row names evictions: {stats:#?}"
        );
        rows.iter()
            .map(|e| {
                ["Packets", "Count", "Value"]
                    .iter()
                    .find_map(|k| e[*k].as_u64())
                    .unwrap_or_else(|| panic!("eviction row without a count: {e}"))
            })
            .sum()
    }
}

/// `"ip:port"` -> `ip`.
pub fn ip_part(endpoint: &str) -> &str {
    endpoint.rsplit_once(':').map_or(endpoint, |(ip, _)| ip)
}

/// One row of `netd conntrack ls --format json`, flattened (protocol and kind lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtEntry {
    pub proto: String,
    pub kind: String,
    /// `ip:port` strings.
    pub orig_src: String,
    pub orig_dst: String,
    pub trans_src: String,
    pub trans_dst: String,
}

impl CtEntry {
    /// Parses one row; panics with the row if a field of the contract is missing.
    pub fn parse(v: &Value) -> CtEntry {
        let s = |a: &Value| {
            a.as_str()
                .unwrap_or_else(|| panic!("contract: conntrack row field is a string: {v}"))
                .to_string()
        };
        assert!(
            v["AgeSeconds"].is_u64(),
            "contract: conntrack rows carry AgeSeconds, a number: {v}"
        );
        CtEntry {
            proto: s(&v["Protocol"]).to_ascii_lowercase(),
            kind: s(&v["Kind"]).to_ascii_lowercase(),
            orig_src: s(&v["Original"]["Src"]),
            orig_dst: s(&v["Original"]["Dst"]),
            trans_src: s(&v["Translated"]["Src"]),
            trans_dst: s(&v["Translated"]["Dst"]),
        }
    }

    /// True if `ip` is any of the four addresses.
    pub fn mentions(&self, ip: &str) -> bool {
        [
            &self.orig_src,
            &self.orig_dst,
            &self.trans_src,
            &self.trans_dst,
        ]
        .iter()
        .any(|a| ip_part(a) == ip)
    }
}

/// Every row of a `conntrack ls --format json` array.
pub fn ct_entries(ct: &[Value]) -> Vec<CtEntry> {
    ct.iter().map(CtEntry::parse).collect()
}
