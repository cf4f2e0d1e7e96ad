//! BPF_PROG_TEST_RUN cost per packet of each fast-path program, measured by `prog-cost`
//! (a binary of the netd-tests crate that prints one JSON line per case).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::cmd;

#[derive(Deserialize)]
pub struct Case {
    pub case: String,
    pub ns_per_packet: f64,
}

pub fn measure(prog_cost: &Path) -> Result<Vec<Case>> {
    if !prog_cost.exists() {
        bail!(
            "{} does not exist: the netd-tests crate has no `prog-cost` binary yet",
            prog_cost.display()
        );
    }
    let mut command = Command::new("timeout");
    command.arg("300").arg(prog_cost);
    let output = cmd::output(&mut command)?;
    let cases = output
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .map(|line| {
            serde_json::from_str(line).with_context(|| format!("bad prog-cost line: {line}"))
        })
        .collect::<Result<Vec<Case>>>()?;
    if cases.is_empty() {
        bail!("prog-cost printed no cases");
    }
    Ok(cases)
}
