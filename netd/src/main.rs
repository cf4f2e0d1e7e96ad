//! The `netd` binary: `netd daemon` runs the daemon; every other command is a client of it.
use std::io::IsTerminal;
use std::process::ExitCode;

use netd::cli::{self, Cli, Command};
use netd::daemon::DaemonArgs;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::from_env();
    match cli.command {
        Command::Daemon(args) => daemon(args),
        Command::Client(command) => cli::run(cli.socket, command),
    }
}

/// Runs the daemon on a multi-thread runtime, logging to stderr (`RUST_LOG`, default `info`).
fn daemon(args: DaemonArgs) -> ExitCode {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(netd::daemon::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
