//! Developer tasks for netd: `cargo xtask <command>` (the alias lives in `.cargo/config.toml`).
//! One module per command; shared helpers (commands, processes, namespaces) have their own modules.

mod bench;
mod cmd;
mod demo;
mod install;
mod interrupt;
mod netd_daemon;
mod netns;
mod process;
mod subnet;
mod test;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Developer tasks for netd")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what a fresh Debian 12 machine lacks (idempotent; says what it does).
    Install,
    /// Install, then run fmt, clippy (host and BPF), the release build and the whole test suite.
    Test,
    /// Start a throwaway daemon, connect two sandboxes and show traffic crossing the eBPF dataplane.
    Demo,
    /// Compare netd with a bare veth pair, a Docker-style bridge, iptables NAT and docker-proxy;
    /// appends to bench/RESULTS.md.
    Bench(bench::Options),
}

fn main() -> anyhow::Result<()> {
    // Ctrl-C must not skip the cleanup guards: record it and let the running command fail instead.
    interrupt::install_handler();
    match Cli::parse().command {
        Command::Install => install::run(),
        Command::Test => test::run(),
        Command::Demo => demo::run(),
        Command::Bench(options) => bench::run(&options),
    }
}
