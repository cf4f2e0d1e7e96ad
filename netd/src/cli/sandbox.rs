//! `netd sandbox ...`: named network namespaces under /run/netns, for users without a
//! container runtime.
use clap::{Args, Subcommand};

use super::client::{route, Client};
use super::error::{CliError, Failures};
use super::output::{self, emit, Format};
use crate::api::types::{SandboxCreate, SandboxInfo};

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Create a sandbox: a network namespace /run/netns/NAME
    Create(CreateArgs),
    /// Disconnect sandboxes from all networks and delete them
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// List sandboxes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// `host`: the sandbox shares the host's network stack; `none`: loopback only, and
    /// no other network may be connected (as `docker run --network host|none`)
    #[arg(long, value_name = "NETWORK")]
    pub network: Option<String>,
    /// Name of the sandbox
    pub name: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Sandbox names
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub async fn run(client: &Client, command: SandboxCommand) -> Result<(), CliError> {
    match command {
        SandboxCommand::Create(args) => {
            let request = SandboxCreate {
                name: args.name,
                network: args.network,
            };
            let created: SandboxInfo = client.post(&route::sandboxes(), &request).await?;
            emit(&format!("{}\n", created.name))
        }
        SandboxCommand::Rm(args) => {
            let mut failures = Failures::default();
            for name in &args.names {
                match client.delete(&route::sandbox(name)).await {
                    Ok(()) => emit(&format!("{name}\n"))?,
                    Err(err) => failures.record(err)?,
                }
            }
            failures.finish()
        }
        SandboxCommand::Ls(args) => {
            let mut sandboxes: Vec<SandboxInfo> = client.get(&route::sandboxes()).await?;
            sandboxes.sort_by(|a, b| a.name.cmp(&b.name));
            emit(&match args.format {
                Format::Table => output::sandbox_table(&sandboxes),
                Format::Json => format!("{}\n", output::compact_json(&sandboxes)),
            })
        }
    }
}
