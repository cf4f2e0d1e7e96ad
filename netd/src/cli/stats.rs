//! `netd stats`: the dataplane's delivery and drop counters, per network and reason.
use clap::Args;

use super::client::{route, Client};
use super::error::CliError;
use super::output::{self, emit, Format};
use crate::api::types::StatEntry;

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub async fn run(client: &Client, args: StatsArgs) -> Result<(), CliError> {
    let stats: Vec<StatEntry> = client.get(&route::stats()).await?;
    emit(&match args.format {
        Format::Table => output::stats_table(&stats),
        Format::Json => format!("{}\n", output::compact_json(&stats)),
    })
}
