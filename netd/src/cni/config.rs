//! The network configuration a runtime passes on stdin, and the CNI_ARGS it sets.
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

use super::error::{code, CniError, Result};

/// CNI versions netd speaks; results are shaped by the one the configuration names.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Where the daemon listens unless the configuration says `socket`.
const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    /// The netd network this configuration attaches to.
    pub name: String,
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Used only when the network does not exist yet and the first ADD creates it.
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub ip_masq: Option<bool>,
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    /// Echoed in the result.
    #[serde(default)]
    pub dns: Option<Value>,
    /// What ADD returned, given to CHECK (and DEL) by the runtime.
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC's list of attachments to keep.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// Capabilities the runtime fills in (`portMappings`, `ips`, `mac`, `aliases`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuntimeConfig {
    pub port_mappings: Vec<PortMapping>,
    pub ips: Vec<String>,
    pub mac: Option<String>,
    pub aliases: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    #[serde(default)]
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "tcp")]
    pub protocol: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
}

fn tcp() -> String {
    "tcp".into()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidAttachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

impl NetConf {
    /// Decodes stdin: undecodable JSON is code 6, a version netd does not speak code 1,
    /// anything else wrong code 7.
    pub fn parse(stdin: &[u8]) -> Result<NetConf> {
        let value: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::UNDECODABLE,
                format!("cannot decode the network configuration: {e}"),
            )
        })?;
        let version = value.get("cniVersion").and_then(Value::as_str);
        match version {
            None => {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    "the network configuration has no cniVersion",
                ))
            }
            Some(v) if !SUPPORTED_VERSIONS.contains(&v) => {
                return Err(incompatible(v));
            }
            Some(_) => {}
        }
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(
                code::INVALID_CONFIG,
                format!("invalid network configuration: {e}"),
            )
        })?;
        if conf.name.is_empty() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "invalid network configuration: name is empty",
            ));
        }
        Ok(conf)
    }

    pub fn socket(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
    }

    /// Whether the configuration's version is at least `major.minor`.
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self.cni_version.split('.').map(|p| p.parse::<u32>());
        match (parts.next(), parts.next()) {
            (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
            _ => false,
        }
    }

    /// The `-p` specs of the `portMappings` capability; IPv6 host addresses are skipped
    /// (netd publishes IPv4 only; runtimes send both families for one port).
    pub fn port_specs(&self) -> Result<Vec<String>> {
        let mut specs = Vec::new();
        for m in &self.runtime_config.port_mappings {
            let protocol = m.protocol.to_ascii_lowercase();
            if !["tcp", "udp", "sctp"].contains(&protocol.as_str()) {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("invalid port mapping: unknown protocol {:?}", m.protocol),
                ));
            }
            if m.host_ip.contains(':') {
                continue;
            }
            let (c, h) = (m.container_port, m.host_port);
            specs.push(match (m.host_ip.as_str(), h) {
                ("", 0) => format!("{c}/{protocol}"),
                ("", h) => format!("{h}:{c}/{protocol}"),
                (ip, 0) => format!("{ip}::{c}/{protocol}"),
                (ip, h) => format!("{ip}:{h}:{c}/{protocol}"),
            });
        }
        Ok(specs)
    }
}

pub fn incompatible(version: &str) -> CniError {
    CniError {
        code: code::INCOMPATIBLE_VERSION,
        msg: format!("incompatible CNI version {version:?}"),
        details: format!("netd-cni supports {}", SUPPORTED_VERSIONS.join(", ")),
    }
}

/// CNI_ARGS: `K=V;K2=V2`. netd reads `IP` and `MAC`; other keys are refused unless
/// `IgnoreUnknown` is set, as the CNI conventions say.
#[derive(Debug, Default)]
pub struct CniArgs {
    pub ip: Option<String>,
    pub mac: Option<String>,
}

impl CniArgs {
    pub fn parse(text: &str) -> Result<CniArgs> {
        let mut args = CniArgs::default();
        let mut unknown = Vec::new();
        let mut ignore_unknown = false;
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("invalid CNI_ARGS pair {pair:?}: expected KEY=VALUE"),
                )
            })?;
            match key {
                "IgnoreUnknown" => {
                    ignore_unknown = matches!(value.to_ascii_lowercase().as_str(), "1" | "true")
                }
                "IP" => args.ip = Some(value.to_string()),
                "MAC" => args.mac = Some(value.to_string()),
                other => unknown.push(other.to_string()),
            }
        }
        if !unknown.is_empty() && !ignore_unknown {
            return Err(CniError::new(
                code::UNSUPPORTED_FIELD,
                format!(
                    "unknown CNI_ARGS {} (set IgnoreUnknown=1 to ignore them)",
                    unknown.join(", ")
                ),
            ));
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_decoding_errors_have_their_codes() {
        assert_eq!(NetConf::parse(b"{").unwrap_err().code, code::UNDECODABLE);
        let v = |s: &str| NetConf::parse(s.as_bytes()).map(|_| ()).map_err(|e| e.code);
        assert_eq!(v(r#"{"cniVersion":"0.2.0","name":"n"}"#), Err(1));
        assert_eq!(v(r#"{"name":"n"}"#), Err(7));
        assert_eq!(v(r#"{"cniVersion":"1.0.0"}"#), Err(7));
        assert_eq!(v(r#"{"cniVersion":"1.0.0","name":"n","mtu":"x"}"#), Err(7));
        assert_eq!(
            v(r#"{"cniVersion":"1.1.0","name":"n","type":"netd"}"#),
            Ok(())
        );
    }

    #[test]
    fn port_mappings_become_p_specs() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"n","runtimeConfig":{"portMappings":[
                {"hostPort":8080,"containerPort":80,"protocol":"tcp"},
                {"hostPort":53,"containerPort":53,"protocol":"UDP","hostIP":"127.0.0.1"},
                {"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"::1"}]}}"#,
        )
        .unwrap();
        assert_eq!(
            conf.port_specs().unwrap(),
            vec!["8080:80/tcp", "127.0.0.1:53:53/udp"]
        );
        for spec in conf.port_specs().unwrap() {
            assert!(crate::ports::PortSpec::parse(&spec).is_ok());
        }
    }

    #[test]
    fn cni_args_follow_the_conventions() {
        assert_eq!(
            CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=x;IP=10.0.0.5")
                .unwrap()
                .ip
                .as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(CniArgs::parse("FOO=1").unwrap_err().code, 2);
        assert_eq!(CniArgs::parse("FOO").unwrap_err().code, 4);
    }
}
