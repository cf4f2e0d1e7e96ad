//! The `netd` command line: the clap tree, and the client commands that talk to the
//! daemon over its unix socket. `main.rs` runs `netd daemon` itself.
use std::path::PathBuf;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::daemon::DaemonArgs;

pub mod client;
pub mod conntrack;
pub mod error;
pub mod network;
pub mod output;
pub mod parse;
pub mod port;
pub mod sandbox;
pub mod stats;

use client::Client;
use error::CliError;

/// Where the daemon listens unless `--socket` or `NETD_SOCKET` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

/// eBPF dataplane for container networks.
#[derive(Debug, Parser)]
#[command(name = "netd", version)]
pub struct Cli {
    /// Unix socket of the daemon's API
    #[arg(long, env = "NETD_SOCKET", value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon
    Daemon(DaemonArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The commands answered by a running daemon.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage sandboxes (named network namespaces)
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Show the dataplane's delivery, drop and NAT counters
    Stats(stats::StatsArgs),
    /// List published ports
    #[command(subcommand)]
    Port(port::PortCommand),
    /// Show the NAT/conntrack table
    #[command(subcommand)]
    Conntrack(conntrack::ConntrackCommand),
}

impl Cli {
    /// Parses the process arguments; exits with status 2 on a usage error.
    pub fn from_env() -> Self {
        Self::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (program name first). A `--socket` or `NETD_SOCKET` given before
    /// `daemon` also sets the daemon's socket, unless `daemon --socket` is given too.
    pub fn parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut cli = Self::from_arg_matches(&matches)?;
        if let Command::Daemon(daemon) = &mut cli.command {
            let outer_given = matches.value_source("socket") != Some(ValueSource::DefaultValue);
            let inner_default = matches
                .subcommand_matches("daemon")
                .and_then(|m| m.value_source("socket"))
                == Some(ValueSource::DefaultValue);
            if outer_given && inner_default {
                daemon.socket = cli.socket.clone();
            }
        }
        Ok(cli)
    }
}

/// Runs a client command on a small current-thread runtime. Errors are printed as one
/// line on stderr; the result is the process's exit status.
pub fn run(socket: PathBuf, command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(socket);
    match runtime.block_on(dispatch(&client, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(client: &Client, command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Network(command) => network::run(client, command).await,
        ClientCommand::Sandbox(command) => sandbox::run(client, command).await,
        ClientCommand::Stats(args) => stats::run(client, args).await,
        ClientCommand::Port(command) => port::run(client, command).await,
        ClientCommand::Conntrack(command) => conntrack::run(client, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_socket(argv: &[&str]) -> PathBuf {
        match Cli::parse_args(argv).expect("parses").command {
            Command::Daemon(args) => args.socket,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn daemon_socket_follows_the_global_flag_unless_given() {
        // NETD_SOCKET from the test's environment would change the defaults.
        if std::env::var_os("NETD_SOCKET").is_some() {
            return;
        }
        assert_eq!(
            daemon_socket(&["netd", "daemon"]),
            PathBuf::from(DEFAULT_SOCKET)
        );
        assert_eq!(
            daemon_socket(&["netd", "--socket", "/tmp/a.sock", "daemon"]),
            PathBuf::from("/tmp/a.sock")
        );
        assert_eq!(
            daemon_socket(&[
                "netd",
                "--socket",
                "/tmp/a.sock",
                "daemon",
                "--socket",
                "/tmp/b.sock"
            ]),
            PathBuf::from("/tmp/b.sock")
        );
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        for argv in [
            &["netd", "network", "ls", "--format", "yaml"][..],
            &["netd", "network", "rm"],
            &["netd", "network", "connect", "web"],
            &["netd", "sandbox", "create"],
            &["netd", "bogus"],
        ] {
            let err = Cli::parse_args(argv).expect_err("usage error");
            assert_eq!(err.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn client_commands_parse() {
        for argv in [
            &["netd", "network", "ls", "-q"][..],
            &["netd", "network", "list", "--format", "json"],
            &["netd", "network", "inspect", "a", "b"],
            &["netd", "network", "remove", "a", "b"],
            &["netd", "network", "prune", "-f"],
            &[
                "netd", "network", "connect", "--ip", "10.0.0.5", "--alias", "x", "--alias", "y",
                "web", "sb1",
            ],
            &["netd", "network", "disconnect", "web", "/proc/1/ns/net"],
            &["netd", "sandbox", "ls", "--format", "json"],
            &["netd", "sandbox", "rm", "a", "b"],
            &["netd", "stats", "--format", "json"],
        ] {
            match Cli::parse_args(argv) {
                Ok(Cli {
                    command: Command::Client(_),
                    ..
                }) => {}
                other => panic!("{argv:?}: {other:?}"),
            }
        }
    }
}
