//! `netd network ...`: the verbs and flags of `docker network`.
use std::path::Path;

use clap::{Args, Subcommand};

use super::client::{route, Client};
use super::error::{CliError, Failures};
use super::output::{self, emit, Format};
use super::parse;
use crate::api::types::{
    ConnectRequest, DisconnectRequest, NetworkCreate, NetworkCreated, NetworkInspect, PruneReport,
};

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(NamesArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(NamesArgs),
    /// Remove all unused user networks
    Prune(PruneArgs),
    /// Connect a network namespace to a network
    Connect(ConnectArgs),
    /// Disconnect a network namespace from a network
    Disconnect(DisconnectArgs),
}

/// Flags of `network create`. Values are plain strings here and parsed by
/// [`CreateArgs::to_request`], so a bad value is an `Error:` line with exit 1.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the network [default: bridge]
    #[arg(short = 'd', long, value_name = "DRIVER")]
    pub driver: Option<String>,
    /// Subnet in CIDR format
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// IPv4 gateway of the subnet
    #[arg(long, value_name = "IP")]
    pub gateway: Option<String>,
    /// Allocate endpoint IPs from a sub-range
    #[arg(long, value_name = "CIDR")]
    pub ip_range: Option<String>,
    /// Address the IPAM must never hand out (repeatable)
    #[arg(long = "aux-address", value_name = "NAME=IP")]
    pub aux_addresses: Vec<String>,
    /// Restrict external access to the network
    #[arg(long)]
    pub internal: bool,
    /// MTU of the network's interfaces
    #[arg(long, value_name = "N")]
    pub mtu: Option<String>,
    /// Driver option (repeatable)
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Name of the network
    pub name: String,
}

impl CreateArgs {
    /// The API request, or the first flag value that does not parse.
    pub fn to_request(&self) -> Result<NetworkCreate, CliError> {
        Ok(NetworkCreate {
            name: self.name.clone(),
            driver: self.driver.clone(),
            subnet: self
                .subnet
                .as_deref()
                .map(|s| parse::cidr("subnet", s))
                .transpose()?,
            gateway: self
                .gateway
                .as_deref()
                .map(|s| parse::ip("gateway", s))
                .transpose()?,
            ip_range: self
                .ip_range
                .as_deref()
                .map(|s| parse::cidr("ip-range", s))
                .transpose()?,
            aux_addresses: parse::aux_addresses(&self.aux_addresses)?,
            internal: self.internal,
            mtu: self.mtu.as_deref().map(parse::mtu).transpose()?,
            options: parse::options(&self.options)?,
        })
    }
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Network names or ids
    #[arg(value_name = "NETWORK", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation (netd never prompts)
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address of the endpoint
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Network-scoped alias (repeatable)
    #[arg(long = "alias", value_name = "NAME")]
    pub aliases: Vec<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|udp|sctp] (repeatable)
    #[arg(short = 'p', long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Network name or id
    pub network: String,
    /// A name under /run/netns, or a path such as /proc/PID/ns/net
    pub netns: String,
}

#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Network name or id
    pub network: String,
    /// A name under /run/netns, or a path such as /proc/PID/ns/net
    pub netns: String,
}

pub async fn run(client: &Client, command: NetworkCommand) -> Result<(), CliError> {
    match command {
        NetworkCommand::Create(args) => create(client, &args).await,
        NetworkCommand::Ls(args) => ls(client, &args).await,
        NetworkCommand::Inspect(args) => inspect(client, &args.names).await,
        NetworkCommand::Rm(args) => rm(client, &args.names).await,
        NetworkCommand::Prune(_) => prune(client).await,
        NetworkCommand::Connect(args) => connect(client, &args).await,
        NetworkCommand::Disconnect(args) => disconnect(client, &args).await,
    }
}

async fn create(client: &Client, args: &CreateArgs) -> Result<(), CliError> {
    let request = args.to_request()?;
    let created: NetworkCreated = client.post(&route::networks(), &request).await?;
    emit(&format!("{}\n", created.id))
}

async fn ls(client: &Client, args: &LsArgs) -> Result<(), CliError> {
    let mut networks: Vec<NetworkInspect> = client.get(&route::networks()).await?;
    networks.sort_by(|a, b| a.name.cmp(&b.name));
    let text = match (args.quiet, args.format) {
        (true, _) => output::network_ids(&networks),
        (false, Format::Table) => output::network_table(&networks),
        (false, Format::Json) => output::network_json_lines(&networks),
    };
    emit(&text)
}

/// Prints the networks found as one JSON array (`[]` if none), and an error line for
/// each name that is not, like `docker network inspect`.
async fn inspect(client: &Client, names: &[String]) -> Result<(), CliError> {
    let mut failures = Failures::default();
    let mut found: Vec<NetworkInspect> = Vec::with_capacity(names.len());
    for name in names {
        match client.get(&route::network(name)).await {
            Ok(network) => found.push(network),
            Err(err) => failures.record(err)?,
        }
    }
    emit(&output::pretty_json(&found))?;
    failures.finish()
}

async fn rm(client: &Client, names: &[String]) -> Result<(), CliError> {
    let mut failures = Failures::default();
    for name in names {
        match client.delete(&route::network(name)).await {
            Ok(()) => emit(&format!("{name}\n"))?,
            Err(err) => failures.record(err)?,
        }
    }
    failures.finish()
}

async fn prune(client: &Client) -> Result<(), CliError> {
    let report: PruneReport = client.post_empty(&route::network_prune()).await?;
    if report.networks_deleted.is_empty() {
        return Ok(());
    }
    let mut text = String::from("Deleted Networks:\n");
    for name in &report.networks_deleted {
        text.push_str(name);
        text.push('\n');
    }
    emit(&text)
}

async fn connect(client: &Client, args: &ConnectArgs) -> Result<(), CliError> {
    let request = ConnectRequest {
        netns: netns_arg(&args.netns)?,
        ipv4_address: args.ip.as_deref().map(|s| parse::ip("ip", s)).transpose()?,
        aliases: args.aliases.clone(),
        ports: args.publish.clone(),
        ..Default::default()
    };
    client
        .post_discard(&route::network_connect(&args.network), &request)
        .await
}

async fn disconnect(client: &Client, args: &DisconnectArgs) -> Result<(), CliError> {
    let request = DisconnectRequest {
        netns: netns_arg(&args.netns)?,
        ..Default::default()
    };
    client
        .post_discard(&route::network_disconnect(&args.network), &request)
        .await
}

/// A NETNS argument as the daemon needs it: a bare name is kept (the daemon looks it up
/// under /run/netns); a relative path is made absolute, since the daemon's working
/// directory is not ours.
pub(super) fn netns_arg(netns: &str) -> Result<String, CliError> {
    let path = Path::new(netns);
    if !netns.contains('/') || path.is_absolute() {
        return Ok(netns.to_owned());
    }
    std::path::absolute(path)
        .map(|abs| abs.display().to_string())
        .map_err(|e| CliError::Client(format!("cannot resolve netns path {netns:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use clap::Parser;

    use super::super::{Cli, ClientCommand, Command};
    use super::*;

    fn create_args(argv: &[&str]) -> CreateArgs {
        let cli =
            Cli::try_parse_from(["netd", "network", "create"].iter().chain(argv)).expect("parses");
        match cli.command {
            Command::Client(ClientCommand::Network(NetworkCommand::Create(args))) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn create_flags_build_the_request() {
        let request = create_args(&[
            "-d",
            "bridge",
            "--subnet",
            "10.7.0.0/16",
            "--gateway",
            "10.7.0.1",
            "--ip-range",
            "10.7.1.0/24",
            "--aux-address",
            "router=10.7.0.2",
            "--aux-address=printer=10.7.0.3",
            "--internal",
            "--mtu",
            "1400",
            "-o",
            "com.docker.network.bridge.enable_icc=false",
            "--opt=com.docker.network.driver.mtu=1400",
            "web",
        ])
        .to_request()
        .expect("valid");
        assert_eq!(request.name, "web");
        assert_eq!(request.driver.as_deref(), Some("bridge"));
        assert_eq!(
            request.subnet.map(|n| n.to_string()).as_deref(),
            Some("10.7.0.0/16")
        );
        assert_eq!(request.gateway, Some(Ipv4Addr::new(10, 7, 0, 1)));
        assert_eq!(
            request.ip_range.map(|n| n.to_string()).as_deref(),
            Some("10.7.1.0/24")
        );
        assert_eq!(request.aux_addresses.len(), 2);
        assert!(request.internal);
        assert_eq!(request.mtu, Some(1400));
        assert_eq!(
            request.options["com.docker.network.bridge.enable_icc"],
            "false"
        );
        assert_eq!(request.options["com.docker.network.driver.mtu"], "1400");
    }

    #[test]
    fn create_defaults_leave_choices_to_the_daemon() {
        let request = create_args(&["web"]).to_request().expect("valid");
        assert_eq!(request.driver, None);
        assert_eq!(request.subnet, None);
        assert!(request.aux_addresses.is_empty() && request.options.is_empty());
        assert!(!request.internal);
    }

    #[test]
    fn create_rejects_bad_values_before_contacting_the_daemon() {
        let err = create_args(&["--subnet", "x", "web"])
            .to_request()
            .expect_err("bad");
        assert_eq!(
            err.to_string(),
            r#"Error: invalid subnet "x": expected ADDRESS/PREFIX, e.g. 10.1.0.0/24"#
        );
        let err = create_args(&["--gateway", "10.0.0.300", "web"])
            .to_request()
            .expect_err("bad");
        assert_eq!(
            err.to_string(),
            r#"Error: invalid gateway "10.0.0.300": "10.0.0.300" is not an IPv4 address"#
        );
        assert!(create_args(&["-o", "novalue", "web"]).to_request().is_err());
        assert!(create_args(&["--aux-address", "10.0.0.2", "web"])
            .to_request()
            .is_err());
    }

    #[test]
    fn netns_names_pass_through_and_relative_paths_become_absolute() {
        assert_eq!(netns_arg("sb1").expect("name"), "sb1");
        assert_eq!(netns_arg("/proc/1/ns/net").expect("path"), "/proc/1/ns/net");
        let relative = netns_arg("./ns/x").expect("path");
        assert!(Path::new(&relative).is_absolute(), "{relative}");
        assert!(
            relative.ends_with("/ns/x") && !relative.contains("/./"),
            "{relative}"
        );
    }
}
