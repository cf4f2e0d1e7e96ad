//! `cargo xtask demo`: a throwaway netd in a network namespace of its own (so its uplink
//! program and sysctls never touch the machine's real interface), one network, two
//! sandboxes, pings across the eBPF dataplane and its counters, then a full cleanup (also
//! on failure).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context as _, Result};

use crate::netd_daemon::NetdDaemon;
use crate::netns::Netns;
use crate::{cmd, install, subnet, workspace};

const NETWORK: &str = "demo";
/// The demo uses the first 10.213.N.0/24 that no host route or address overlaps.
const SUBNET_BASE: [u8; 2] = [10, 213];

pub fn run() -> Result<()> {
    install::run()?;
    println!("\n== building netd (release)");
    cmd::run(&mut workspace::cargo(["build", "--release", "-p", "netd"]))?;
    let netd_bin = workspace::metadata()?.release_bin("netd");

    let pid = std::process::id();
    let subnet = subnet::free_host_subnet(SUBNET_BASE)?;
    println!("using subnet {subnet}: no host route or address overlaps it");

    let host = Netns::create(&format!("ndemo-h-{pid}"))?;
    println!("\n== starting the daemon in its namespace {}", host.name());
    let daemon = NetdDaemon::start(
        &netd_bin,
        std::env::temp_dir().join(format!("netd-demo-{pid}")),
        PathBuf::from(format!("/sys/fs/bpf/netd-demo-{pid}")),
        Some(host.name()),
    )?;
    let mut demo = Demo {
        daemon,
        sandboxes: Vec::new(),
        network_created: false,
        gateways: Vec::new(),
        _host: host,
    };
    demo.setup(&subnet, pid)?;
    demo.show()?;
    drop(demo);
    println!("\n== demo finished; everything it created is gone");
    Ok(())
}

/// What the demo created; `Drop` tears it down in reverse order, also after a failure.
struct Demo {
    daemon: NetdDaemon,
    sandboxes: Vec<Netns>,
    network_created: bool,
    /// Gateway addresses the daemon put on `lo` of the host namespace, including the one of the
    /// predefined `bridge` network, which no `network rm` removes; deleted after the daemon stopped.
    gateways: Vec<Ipv4Addr>,
    /// The daemon's namespace; a field last so that it is deleted after the daemon stopped.
    _host: Netns,
}

impl Demo {
    fn setup(&mut self, subnet: &str, pid: u32) -> Result<()> {
        println!("\n== creating a network and two sandboxes");
        self.daemon
            .cli(&["network", "create", "--subnet", subnet, NETWORK])?;
        self.network_created = true;
        self.record_gateways()?;
        for side in ["a", "b"] {
            let name = format!("ndemo-{side}-{pid}");
            self.daemon.cli(&["sandbox", "create", &name])?;
            self.sandboxes.push(Netns::adopt(&name));
            self.daemon.cli(&["network", "connect", NETWORK, &name])?;
        }
        Ok(())
    }

    /// Notes the gateways of all networks (the predefined `bridge` one included) while the
    /// daemon is up, so cleanup can remove them even if the daemon dies later.
    fn record_gateways(&mut self) -> Result<()> {
        let ids = self.daemon.cli_quiet(&["network", "ls", "-q"])?;
        let mut args = vec!["network", "inspect"];
        args.extend(ids.split_whitespace());
        let inspect = self.daemon.cli_quiet(&args)?;
        // Networks without IPAM (host, none) simply contribute nothing.
        self.gateways = gateways_of(&inspect).unwrap_or_default();
        Ok(())
    }

    fn show(&mut self) -> Result<()> {
        println!("\n== the network as the daemon sees it");
        let inspect = self.daemon.cli(&["network", "inspect", NETWORK])?;
        let gateway = gateways_of(&inspect)?[0];

        let (a, b) = (&self.sandboxes[0], &self.sandboxes[1]);
        let b_ip = b.ipv4_of("eth0")?.to_string();
        println!(
            "\n== {} pings {} ({b_ip}) through the eBPF dataplane",
            a.name(),
            b.name()
        );
        cmd::run(&mut a.exec("ping", ["-c", "5", "-i", "0.2", "-W", "2", &b_ip]))?;
        let gateway = gateway.to_string();
        println!(
            "\n== {} pings the gateway {gateway}, which is the host",
            a.name()
        );
        cmd::run(&mut a.exec("ping", ["-c", "3", "-i", "0.2", "-W", "2", &gateway]))?;

        println!("\n== the dataplane's own counters");
        self.daemon.cli(&["stats"])?;
        Ok(())
    }
}

impl Drop for Demo {
    /// Best effort: every step runs even if an earlier one failed.
    fn drop(&mut self) {
        println!("\n== cleaning up");
        let networks: &[&str] = if self.network_created {
            &[NETWORK]
        } else {
            &[]
        };
        self.daemon.remove_all(&self.sandboxes, networks);
        // Whatever the daemon could not remove goes by hand, once it can no longer re-add it.
        self.daemon.stop();
        self.sandboxes.clear();
        for gateway in &self.gateways {
            remove_leftover_gateway(*gateway);
        }
    }
}

fn report<T>(result: Result<T>) {
    if let Err(error) = result {
        eprintln!("cleanup: {error:#}");
    }
}

/// `IPAM.Config[].Gateway` of every network in an inspect array, in order.
fn gateways_of(inspect: &str) -> Result<Vec<Ipv4Addr>> {
    let networks: Vec<serde_json::Value> =
        serde_json::from_str(inspect).context("inspect is not a JSON array")?;
    let gateways: Vec<Ipv4Addr> = networks
        .iter()
        .flat_map(|network| {
            network["IPAM"]["Config"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|config| config["Gateway"].as_str().map(str::to_string))
        .filter_map(|gateway| gateway.split('/').next()?.parse().ok())
        .collect();
    if gateways.is_empty() {
        anyhow::bail!("inspect shows no IPAM.Config[].Gateway");
    }
    Ok(gateways)
}

/// The daemon puts the gateway as a /32 on `lo`; if it died before `network rm`, that address stays.
fn remove_leftover_gateway(gateway: Ipv4Addr) {
    let cidr = format!("{gateway}/32");
    let on_lo = cmd::capture(&mut cmd::command(
        "ip",
        ["-4", "-o", "addr", "show", "dev", "lo"],
    ))
    .is_ok_and(|text| text.contains(&format!(" {cidr} ")));
    if on_lo {
        report(cmd::run(&mut cmd::command(
            "ip",
            ["addr", "del", &cidr, "dev", "lo"],
        )));
    }
}
