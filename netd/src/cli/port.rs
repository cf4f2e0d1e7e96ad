//! `netd port ls [NETNS]`: published ports, as `docker port` prints them.
use clap::{Args, Subcommand};

use super::client::{route, Client};
use super::error::CliError;
use super::output::{self, emit, Format};
use crate::api::types::PortInfo;

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// List published ports, of one sandbox or of all
    #[command(visible_alias = "list")]
    Ls(LsArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// A name under /run/netns, or a path such as /proc/PID/ns/net
    pub netns: Option<String>,
}

pub async fn run(client: &Client, command: PortCommand) -> Result<(), CliError> {
    let PortCommand::Ls(args) = command;
    let netns = args
        .netns
        .as_deref()
        .map(super::network::netns_arg)
        .transpose()?;
    let ports: Vec<PortInfo> = client.get(&route::ports(netns.as_deref())).await?;
    emit(&match args.format {
        Format::Json => format!("{}\n", output::compact_json(&ports)),
        Format::Table => output::port_lines(&ports, netns.is_none()),
    })
}
