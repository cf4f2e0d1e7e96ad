//! Rendering of command output, docker style. Every renderer is a pure function
//! from API types to the exact text written to stdout.
use std::io::Write;

use serde::Serialize;

use super::error::CliError;
use crate::api::types::{ConntrackEntry, NetworkInspect, PortInfo, SandboxInfo, StatEntry};

/// Least width of a padded column (docker's tabwriter settings).
const MIN_WIDTH: usize = 10;
/// Spaces after the widest cell of a column.
const PADDING: usize = 3;
/// Length of the ids shown by `ls`.
pub const SHORT_ID_LEN: usize = 12;

/// Output format of the listing commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with a header line.
    #[default]
    Table,
    /// JSON.
    Json,
}

/// Aligns rows under a header like Go's tabwriter does for docker: every column but the
/// last is padded to its widest cell plus 3 spaces, and at least 10 wide.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(rows).collect();
    let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|col| {
            let widest = lines
                .iter()
                .filter_map(|l| l.get(col))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0);
            (widest + PADDING).max(MIN_WIDTH)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let mut text = String::new();
        for (col, cell) in line.iter().enumerate() {
            text.push_str(cell);
            if col + 1 < line.len() {
                let pad = widths[col] - cell.chars().count();
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// The first 12 characters of an id.
pub fn short_id(id: &str) -> &str {
    id.char_indices()
        .nth(SHORT_ID_LEN)
        .map_or(id, |(end, _)| &id[..end])
}

/// `network ls`: `NETWORK ID     NAME      DRIVER    SCOPE`.
pub fn network_table(networks: &[NetworkInspect]) -> String {
    let rows: Vec<Vec<String>> = networks
        .iter()
        .map(|n| {
            vec![
                short_id(&n.id).to_owned(),
                n.name.clone(),
                n.driver.clone(),
                n.scope.clone(),
            ]
        })
        .collect();
    table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows)
}

/// `network ls -q`: one short id per line.
pub fn network_ids(networks: &[NetworkInspect]) -> String {
    networks
        .iter()
        .map(|n| format!("{}\n", short_id(&n.id)))
        .collect()
}

/// One line of `network ls --format json`: docker's keys, sorted, all values strings.
#[derive(Serialize)]
struct NetworkLine<'a> {
    #[serde(rename = "CreatedAt")]
    created_at: &'a str,
    #[serde(rename = "Driver")]
    driver: &'a str,
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "IPv6")]
    ipv6: String,
    #[serde(rename = "Internal")]
    internal: String,
    /// `key=value` pairs joined by commas.
    #[serde(rename = "Labels")]
    labels: String,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Scope")]
    scope: &'a str,
}

/// `network ls --format json`: one JSON object per line.
pub fn network_json_lines(networks: &[NetworkInspect]) -> String {
    networks
        .iter()
        .map(|n| {
            let line = NetworkLine {
                created_at: &n.created,
                driver: &n.driver,
                id: short_id(&n.id),
                ipv6: n.enable_ipv6.to_string(),
                internal: n.internal.to_string(),
                labels: n
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                name: &n.name,
                scope: &n.scope,
            };
            format!("{}\n", compact_json(&line))
        })
        .collect()
}

/// `sandbox ls`: `NAME      NETWORKS`, networks joined by commas.
pub fn sandbox_table(sandboxes: &[SandboxInfo]) -> String {
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|s| vec![s.name.clone(), s.networks.join(",")])
        .collect();
    table(&["NAME", "NETWORKS"], &rows)
}

/// `stats`: `NETWORK   KIND      REASON    PACKETS   BYTES`.
pub fn stats_table(stats: &[StatEntry]) -> String {
    let rows: Vec<Vec<String>> = stats
        .iter()
        .map(|s| {
            vec![
                s.network.clone(),
                s.kind.clone(),
                s.reason.clone(),
                s.packets.to_string(),
                s.bytes.to_string(),
            ]
        })
        .collect();
    table(&["NETWORK", "KIND", "REASON", "PACKETS", "BYTES"], &rows)
}

/// `port ls`: `80/tcp -> 0.0.0.0:8080`, as `docker port` prints it; with the sandbox's
/// name and a tab first when listing every sandbox.
pub fn port_lines(ports: &[PortInfo], with_sandbox: bool) -> String {
    let mut out = String::new();
    for p in ports {
        if with_sandbox {
            out.push_str(&p.sandbox);
            out.push('\t');
        }
        out.push_str(&format!(
            "{}/{} -> {}:{}\n",
            p.container_port, p.protocol, p.host_ip, p.host_port
        ));
    }
    out
}

/// `conntrack ls`: `PROTO  KIND  ORIGINAL  TRANSLATED  AGE`.
pub fn conntrack_table(flows: &[ConntrackEntry]) -> String {
    let rows: Vec<Vec<String>> = flows
        .iter()
        .map(|f| {
            vec![
                f.protocol.clone(),
                f.kind.clone(),
                format!("{} -> {}", f.original.src, f.original.dst),
                format!("{} -> {}", f.translated.src, f.translated.dst),
                format!("{}s", f.age_seconds),
            ]
        })
        .collect();
    table(&["PROTO", "KIND", "ORIGINAL", "TRANSLATED", "IDLE"], &rows)
}

/// Pretty JSON indented by 4 spaces, as `docker inspect` prints it, with a final newline.
pub fn pretty_json<T: Serialize>(value: &T) -> String {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .expect("API types serialise to JSON");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Single-line JSON without a final newline.
pub fn compact_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("API types serialise to JSON")
}

/// Writes command output to stdout. A closed pipe (`netd network ls | head -1`) is not
/// an error.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::Client(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::types::Ipam;

    fn network(name: &str, id: &str, driver: &str) -> NetworkInspect {
        NetworkInspect {
            name: name.to_owned(),
            id: id.to_owned(),
            created: "2025-11-23T11:42:00Z".to_owned(),
            scope: "local".to_owned(),
            driver: driver.to_owned(),
            enable_ipv6: false,
            ipam: Ipam {
                driver: "default".to_owned(),
                options: BTreeMap::new(),
                config: Vec::new(),
            },
            internal: false,
            attachable: false,
            ingress: false,
            containers: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
            peers: None,
        }
    }

    const ID_A: &str = "3fa9c1e2b4d0aa11223344556677889900aabbccddeeff00112233445566778a";
    const ID_B: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn network_table_matches_docker() {
        let nets = [
            network("bridge", ID_A, "bridge"),
            network("a-long-network-name", ID_B, "null"),
        ];
        assert_eq!(
            network_table(&nets[..1]),
            "NETWORK ID     NAME      DRIVER    SCOPE\n\
             3fa9c1e2b4d0   bridge    bridge    local\n"
        );
        assert_eq!(
            network_table(&nets),
            "NETWORK ID     NAME                  DRIVER    SCOPE\n\
             3fa9c1e2b4d0   bridge                bridge    local\n\
             0123456789ab   a-long-network-name   null      local\n"
        );
    }

    #[test]
    fn empty_table_is_just_the_header() {
        assert_eq!(
            network_table(&[]),
            "NETWORK ID   NAME      DRIVER    SCOPE\n"
        );
        assert_eq!(
            stats_table(&[]),
            "NETWORK   KIND      REASON    PACKETS   BYTES\n"
        );
    }

    #[test]
    fn quiet_prints_short_ids() {
        let nets = [
            network("a", ID_A, "bridge"),
            network("b", "short", "bridge"),
        ];
        assert_eq!(network_ids(&nets), "3fa9c1e2b4d0\nshort\n");
    }

    #[test]
    fn json_lines_use_docker_keys_and_string_values() {
        let mut net = network("web", ID_A, "bridge");
        net.internal = true;
        net.labels.insert("team".to_owned(), "x".to_owned());
        let text = network_json_lines(&[net, network("db", ID_B, "bridge")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0],
            r#"{"CreatedAt":"2025-11-23T11:42:00Z","Driver":"bridge","ID":"3fa9c1e2b4d0","IPv6":"false","Internal":"true","Labels":"team=x","Name":"web","Scope":"local"}"#
        );
        let value: serde_json::Value = serde_json::from_str(lines[1]).expect("json");
        assert_eq!(value["Name"], "db");
        assert_eq!(value["Internal"], "false");
    }

    #[test]
    fn stats_table_aligns_numbers_as_text() {
        let row = |network: &str, kind: &str, reason: &str, packets: u64, bytes: u64| StatEntry {
            network: network.to_owned(),
            kind: kind.to_owned(),
            reason: reason.to_owned(),
            packets,
            bytes,
        };
        let stats = [
            row("web", "delivery", "peer", 1234, 98765),
            row("-", "drop", "spoofed-ip", 2, 84),
        ];
        assert_eq!(
            stats_table(&stats),
            "NETWORK   KIND       REASON       PACKETS   BYTES\n\
             web       delivery   peer         1234      98765\n\
             -         drop       spoofed-ip   2         84\n"
        );
    }

    #[test]
    fn sandbox_table_joins_networks_and_trims() {
        let sandbox = |name: &str, networks: &[&str]| SandboxInfo {
            name: name.to_owned(),
            id: "id".to_owned(),
            path: format!("/run/netns/{name}"),
            networks: networks.iter().map(|n| (*n).to_owned()).collect(),
        };
        assert_eq!(
            sandbox_table(&[sandbox("sb1", &["web", "db"]), sandbox("sb2", &[])]),
            "NAME      NETWORKS\nsb1       web,db\nsb2\n"
        );
    }

    #[test]
    fn inspect_is_indented_by_four_spaces() {
        let text = pretty_json(&vec![network("web", ID_A, "bridge")]);
        assert!(
            text.starts_with("[\n    {\n        \"Name\": \"web\",\n"),
            "{text}"
        );
        assert!(text.ends_with("]\n"));
        assert_eq!(pretty_json(&Vec::<NetworkInspect>::new()), "[]\n");
    }

    #[test]
    fn short_id_keeps_short_ids() {
        assert_eq!(short_id(ID_A), "3fa9c1e2b4d0");
        assert_eq!(short_id("abc"), "abc");
    }
}
