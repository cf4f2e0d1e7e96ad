//! The CNI plugin (spec 0.3.0-1.1.0): a client of the daemon's API, like the CLI. The
//! runtime sets CNI_* variables and writes the network configuration on stdin; the result,
//! or an error with the spec's code, goes to stdout.
mod config;
mod error;
mod result;

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::api::types::{
    Attachment, ConnectRequest, Connected, DisconnectRequest, GcReport, GcRequest, NetworkCreate,
    NetworkInspect,
};
use crate::cli::client::{route, Client};
use crate::cli::error::CliError;
use config::{CniArgs, NetConf, SUPPORTED_VERSIONS};
use error::{code, CniError, Result};

/// A runtime waits for the plugin; never longer than this per call to the daemon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin().read_to_end(&mut stdin);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts");
    let outcome = match read {
        Ok(_) => runtime.block_on(run(&stdin)),
        Err(e) => Err(CniError::new(
            code::OTHER,
            format!("cannot read stdin: {e}"),
        )),
    };
    match outcome {
        Ok(Some(output)) => {
            println!("{output}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(err) => {
            let version = serde_json::from_slice::<Value>(&stdin)
                .ok()
                .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
                .unwrap_or_else(|| "1.1.0".into());
            let mut reply = serde_json::to_value(&err).expect("errors serialize");
            reply["cniVersion"] = json!(version);
            println!("{reply}");
            ExitCode::FAILURE
        }
    }
}

/// The CNI_* variables of a command that acts on one container.
struct Container {
    id: String,
    netns: String,
    ifname: String,
    args: CniArgs,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn required(name: &str) -> Result<String> {
    env(name).ok_or_else(|| CniError::new(code::INVALID_ENVIRONMENT, format!("{name} is not set")))
}

impl Container {
    /// `netns_required`: ADD and CHECK need the namespace; DEL does not (it may be gone).
    fn from_env(netns_required: bool) -> Result<Container> {
        let id = required("CNI_CONTAINERID")?;
        let valid_id = id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !valid_id {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("invalid CNI_CONTAINERID {id:?}: letters, digits, '_', '.' and '-' only, starting with a letter or digit"),
            ));
        }
        let ifname = required("CNI_IFNAME")?;
        if !crate::model::valid_ifname(&ifname) {
            return Err(CniError::new(
                code::INVALID_ENVIRONMENT,
                format!("invalid CNI_IFNAME {ifname:?}"),
            ));
        }
        let netns = match netns_required {
            true => required("CNI_NETNS")?,
            false => env("CNI_NETNS").unwrap_or_default(),
        };
        let args = CniArgs::parse(&env("CNI_ARGS").unwrap_or_default())?;
        Ok(Container {
            id,
            netns,
            ifname,
            args,
        })
    }
}

async fn run(stdin: &[u8]) -> Result<Option<Value>> {
    let command = required("CNI_COMMAND")?;
    if command == "VERSION" {
        return Ok(Some(version(stdin)));
    }
    if !["ADD", "DEL", "CHECK", "GC", "STATUS"].contains(&command.as_str()) {
        return Err(CniError::new(
            code::INVALID_ENVIRONMENT,
            format!(
                "unknown CNI_COMMAND {command:?}: expected ADD, DEL, CHECK, GC, STATUS or VERSION"
            ),
        ));
    }
    let conf = NetConf::parse(stdin)?;
    let needs = |major, minor| {
        if conf.version_at_least(major, minor) {
            Ok(())
        } else {
            Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "{command} needs CNI version {major}.{minor}.0 or later, the configuration says {}",
                    conf.cni_version
                ),
            ))
        }
    };
    let client = Client::new(conf.socket()).with_timeout(REQUEST_TIMEOUT);
    match command.as_str() {
        "ADD" => add(&client, &conf, &Container::from_env(true)?)
            .await
            .map(Some),
        "DEL" => del(&client, &conf, &Container::from_env(false)?)
            .await
            .map(|()| None),
        "CHECK" => {
            needs(0, 4)?;
            check(&client, &conf, &Container::from_env(true)?)
                .await
                .map(|()| None)
        }
        "GC" => {
            needs(1, 1)?;
            gc(&client, &conf).await.map(|()| None)
        }
        _ => {
            needs(1, 1)?;
            status(&client).await.map(|()| None)
        }
    }
}

/// VERSION: the versions netd speaks, answered in the one asked about if it is known.
fn version(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_string))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| "1.1.0".into());
    json!({ "cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS })
}

async fn add(client: &Client, conf: &NetConf, container: &Container) -> Result<Value> {
    ensure_network(client, conf).await?;
    let runtime = &conf.runtime_config;
    let address = runtime
        .ips
        .iter()
        .find(|ip| !ip.contains(':'))
        .or(container.args.ip.as_ref())
        .map(|ip| {
            let bare = ip.split_once('/').map_or(ip.as_str(), |(ip, _)| ip);
            bare.parse()
                .map_err(|_| CniError::new(code::INVALID_CONFIG, format!("invalid IP {ip:?}")))
        })
        .transpose()?;
    let request = ConnectRequest {
        netns: container.netns.clone(),
        ipv4_address: address,
        aliases: runtime.aliases.get(&conf.name).cloned().unwrap_or_default(),
        ports: conf.port_specs()?,
        interface: Some(container.ifname.clone()),
        mac_address: runtime.mac.clone().or(container.args.mac.clone()),
        container_id: Some(container.id.clone()),
    };
    let connected: Connected = client
        .post(&route::network_connect(&conf.name), &request)
        .await
        .map_err(CniError::from_daemon)?;
    Ok(result::add_result(
        &conf.cni_version,
        &connected,
        conf.dns.as_ref(),
    ))
}

/// The network of the configuration: the existing one of that name, or a new one made from
/// the configuration's subnet, gateway, ipMasq, mtu and internal.
async fn ensure_network(client: &Client, conf: &NetConf) -> Result<()> {
    match client
        .get::<NetworkInspect>(&route::network(&conf.name))
        .await
    {
        Ok(existing) => {
            let subnet = existing.ipam.config.first().map(|c| c.subnet.as_str());
            match &conf.subnet {
                Some(wanted) if Some(wanted.as_str()) != subnet => Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!(
                        "network {} exists with subnet {}, the configuration says {wanted}",
                        conf.name,
                        subnet.unwrap_or("none")
                    ),
                )),
                _ => Ok(()),
            }
        }
        Err(CliError::Daemon { status: 404, .. }) => create_network(client, conf).await,
        Err(err) => Err(CniError::from_daemon(err)),
    }
}

async fn create_network(client: &Client, conf: &NetConf) -> Result<()> {
    fn parse<T: std::str::FromStr>(text: &Option<String>, what: &str) -> Result<Option<T>> {
        text.as_deref()
            .map(|t| {
                t.parse().map_err(|_| {
                    CniError::new(code::INVALID_CONFIG, format!("invalid {what} {t:?}"))
                })
            })
            .transpose()
    }
    let mut options = std::collections::BTreeMap::new();
    if let Some(masquerade) = conf.ip_masq {
        options.insert(
            crate::service::OPT_MASQUERADE.to_string(),
            masquerade.to_string(),
        );
    }
    let request = NetworkCreate {
        name: conf.name.clone(),
        subnet: parse(&conf.subnet, "subnet")?,
        gateway: parse(&conf.gateway, "gateway")?,
        internal: conf.internal,
        mtu: conf.mtu,
        options,
        ..Default::default()
    };
    match client.post::<_, Value>(&route::networks(), &request).await {
        Ok(_) => Ok(()),
        // Another ADD made it first.
        Err(CliError::Daemon { status: 409, .. }) => Ok(()),
        Err(err) => Err(CniError::from_daemon(err)),
    }
}

/// DEL is idempotent: a network or attachment that is already gone is success.
async fn del(client: &Client, conf: &NetConf, container: &Container) -> Result<()> {
    let request = DisconnectRequest {
        netns: String::new(),
        container_id: Some(container.id.clone()),
        interface: Some(container.ifname.clone()),
    };
    match client
        .post_discard(&route::network_disconnect(&conf.name), &request)
        .await
    {
        Ok(()) | Err(CliError::Daemon { status: 404, .. }) => Ok(()),
        Err(err) => Err(CniError::from_daemon(err)),
    }
}

/// CHECK: the daemon checks the kernel side; the address and MAC must be what ADD
/// returned (the runtime's `prevResult`).
async fn check(client: &Client, conf: &NetConf, container: &Container) -> Result<()> {
    let attachment = Attachment {
        container_id: container.id.clone(),
        interface: container.ifname.clone(),
    };
    client
        .post_discard(&route::network_check(&conf.name), &attachment)
        .await
        .map_err(CniError::from_daemon)?;
    let Some(prev) = &conf.prev_result else {
        return Ok(());
    };
    let network: NetworkInspect = client
        .get(&route::network(&conf.name))
        .await
        .map_err(CniError::from_daemon)?;
    let actual = network
        .containers
        .values()
        .find(|c| {
            c.container_id.as_deref() == Some(container.id.as_str())
                && c.interface == container.ifname
        })
        .ok_or_else(|| {
            CniError::new(
                code::UNKNOWN_CONTAINER,
                format!("container {} is not attached", container.id),
            )
        })?;
    let listed = |field: &str| prev[field].as_array().cloned().unwrap_or_default();
    let addresses: Vec<String> = listed("ips")
        .iter()
        .filter_map(|ip| ip["address"].as_str().map(str::to_string))
        .collect();
    if !addresses.is_empty() && !addresses.contains(&actual.ipv4_address) {
        return Err(CniError::new(
            code::OTHER,
            format!(
                "prevResult lists {}, the container has {}",
                addresses.join(", "),
                actual.ipv4_address
            ),
        ));
    }
    let mac = listed("interfaces")
        .iter()
        .find(|i| i["name"] == container.ifname.as_str() && i.get("sandbox").is_some())
        .and_then(|i| i["mac"].as_str().map(str::to_ascii_lowercase));
    if let Some(mac) = mac.filter(|m| *m != actual.mac_address) {
        return Err(CniError::new(
            code::OTHER,
            format!(
                "prevResult gives {} the MAC {mac}, it has {}",
                container.ifname, actual.mac_address
            ),
        ));
    }
    Ok(())
}

/// GC: without the list of attachments to keep nothing is removed (an error, not "all").
async fn gc(client: &Client, conf: &NetConf) -> Result<()> {
    let valid = conf.valid_attachments.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs cni.dev/valid-attachments (the attachments to keep)",
        )
    })?;
    let request = GcRequest {
        valid_attachments: valid
            .iter()
            .map(|a| Attachment {
                container_id: a.container_id.clone(),
                interface: a.ifname.clone(),
            })
            .collect(),
    };
    match client
        .post::<_, GcReport>(&route::network_gc(&conf.name), &request)
        .await
    {
        Ok(_) | Err(CliError::Daemon { status: 404, .. }) => Ok(()),
        Err(err) => Err(CniError::from_daemon(err)),
    }
}

/// STATUS: ready when the daemon answers.
async fn status(client: &Client) -> Result<()> {
    client
        .get::<Value>(&route::networks())
        .await
        .map(|_| ())
        .map_err(|err| {
            CniError::new(
                code::NOT_AVAILABLE,
                format!("the netd daemon is not available: {err}"),
            )
        })
}
