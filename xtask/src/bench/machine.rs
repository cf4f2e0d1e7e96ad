//! What the results were measured on, so numbers from different runs can be compared honestly.

use anyhow::Result;

use crate::cmd;

pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    /// 1-minute load average when the bench started: other work on the machine skews the numbers.
    pub load: String,
}

impl Machine {
    pub fn describe() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpu = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".to_string());
        Self {
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            load: read("/proc/loadavg")
                .split_whitespace()
                .next()
                .unwrap_or("?")
                .to_string(),
        }
    }
}

/// UTC date and time as (`YYYY-MM-DD`, `HH:MM`).
pub fn utc_now() -> Result<(String, String)> {
    let stamp = cmd::capture(&mut cmd::command("date", ["-u", "+%Y-%m-%d %H:%M"]))?;
    let (date, time) = stamp.trim().split_once(' ').unwrap_or((stamp.trim(), ""));
    Ok((date.to_string(), time.to_string()))
}
