//! `netd conntrack ls`: the flows the dataplane translates (masquerade, published ports,
//! hairpin), one line per flow.
use clap::{Args, Subcommand};

use super::client::{route, Client};
use super::error::CliError;
use super::output::{self, emit, Format};
use crate::api::types::ConntrackEntry;

#[derive(Debug, Subcommand)]
pub enum ConntrackCommand {
    /// List translated flows
    #[command(visible_alias = "list")]
    Ls(LsArgs),
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub async fn run(client: &Client, command: ConntrackCommand) -> Result<(), CliError> {
    let ConntrackCommand::Ls(args) = command;
    let flows: Vec<ConntrackEntry> = client.get(&route::conntrack()).await?;
    emit(&match args.format {
        Format::Json => format!("{}\n", output::compact_json(&flows)),
        Format::Table => output::conntrack_table(&flows),
    })
}
