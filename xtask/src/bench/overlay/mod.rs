//! The overlay benchmark of issue 5: sandboxes on two "hosts" (network namespaces joined by an
//! underlay veth pair), cross-host UDP 64-byte packet rate, TCP throughput and RTT, measured side
//! by side in one run for netd's overlay (eBPF encap/decap, etcd as the cluster store) and for
//! the layout of Docker's classic overlay driver (kernel vxlan device + Linux bridge per host),
//! with a bare veth pair as the floor; then the BPF_PROG_TEST_RUN cost of netd's encap and decap
//! paths.
//!
//! Every name starts with `nbov-<pid>-`; traffic stays between the bench's namespaces. The
//! layouts are set up once and measured in interleaved rounds by the c2c part's code, so drift in
//! the machine's load hits all alike. A layout that cannot be set up is recorded with its reason
//! and the others still run.

mod baseline;
pub mod chart;
mod etcd;
mod layout;
mod netd_side;
pub mod report;
mod results;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use super::floor::VethFloor;
use super::prog_cost::{self, Case};
use super::topology::{Kind, Topology};
use super::{measure_topologies, Rounds};
use baseline::KernelVxlan;
use netd_side::NetdOverlay;
use report::COST_CASES;
pub use results::OverlayResults;

pub struct Settings<'a> {
    pub work_dir: &'a Path,
    pub netd_bin: &'a Result<PathBuf>,
    pub prog_cost_bin: &'a Result<PathBuf>,
    pub rounds: u32,
    pub seconds: u32,
}

pub fn run(settings: &Settings) -> Result<OverlayResults> {
    let prefix = format!("nbov-{}-", std::process::id());
    let work_dir = settings.work_dir;
    let topologies = measure_topologies(
        &Kind::OVERLAY,
        |kind| -> Result<Box<dyn Topology>> {
            match kind {
                Kind::Floor => Ok(Box::new(VethFloor::setup(&prefix)?)),
                Kind::VxlanBridge => Ok(Box::new(KernelVxlan::setup(&prefix, work_dir)?)),
                Kind::NetdOverlay => {
                    let bin = settings.netd_bin.as_ref().map_err(|e| anyhow!("{e:#}"))?;
                    Ok(Box::new(NetdOverlay::setup(&prefix, bin, work_dir)?))
                }
                other => bail!("{} is not an overlay layout", other.label()),
            }
        },
        work_dir,
        Rounds {
            rounds: settings.rounds,
            seconds: settings.seconds,
        },
    )?;

    println!("\n== overlay: BPF_PROG_TEST_RUN cost of encap and decap");
    let prog_cost = settings
        .prog_cost_bin
        .as_ref()
        .map_err(|e| anyhow!("{e:#}"))
        .and_then(|bin| encap_decap_cost(bin))
        .map_err(|error| format!("{error:#}"));
    match &prog_cost {
        Ok(cases) => {
            for case in cases {
                println!("{}: {:.1} ns/packet", case.case, case.ns_per_packet);
            }
        }
        Err(error) => println!("not measured: {error}"),
    }
    Ok(OverlayResults {
        topologies,
        prog_cost,
    })
}

/// The `encap` and `decap` cases of prog-cost; an error naming the missing ones otherwise.
fn encap_decap_cost(prog_cost_bin: &Path) -> Result<Vec<Case>> {
    let mut cases = prog_cost::measure(prog_cost_bin)?;
    let missing: Vec<&str> = COST_CASES
        .into_iter()
        .filter(|&name| !cases.iter().any(|case| case.case == name))
        .collect();
    if !missing.is_empty() {
        let printed: Vec<&str> = cases.iter().map(|case| case.case.as_str()).collect();
        bail!(
            "prog-cost has no case {} (it printed: {}): tests/src/bin/prog-cost.rs does not \
             measure netd's overlay paths in this build",
            missing.join(", "),
            printed.join(", ")
        );
    }
    cases.retain(|case| COST_CASES.contains(&case.case.as_str()));
    Ok(cases)
}
