//! One measurement = one short iperf3 or sockperf run from a client namespace to a server.
//! Every client run is wrapped in `timeout`, so a hung tool cannot stall the bench.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use super::topology::Topology;
use crate::netns::Netns;
use crate::process::Background;
use crate::{cmd, interrupt};

pub const IPERF_PORT: u16 = 5201;
pub const SOCKPERF_PORT: u16 = 11111;
/// Small packets: the rate then measures per-packet cost, not bandwidth.
const UDP_PAYLOAD: &str = "64";
/// A failed client run (e.g. the server still finishing the previous test) is retried this often.
const ATTEMPTS: u32 = 3;

/// Where a client runs and what it connects to. The address and ports need not be the
/// server's own: a published port or a proxy in between is the point of some measurements.
pub struct Target<'a> {
    pub client: &'a Netns,
    pub ip: Ipv4Addr,
    pub iperf_port: u16,
    pub sockperf_port: u16,
    /// A cgroup v2 directory the client joins before it starts: netd's socket hooks are
    /// attached there, so only the bench's own clients are rewritten.
    pub cgroup: Option<&'a Path>,
}

impl<'a> Target<'a> {
    /// Straight from a topology's client to its server's servers.
    pub fn of(topology: &'a dyn Topology) -> Self {
        Self {
            client: topology.client(),
            ip: topology.server_ip(),
            iperf_port: IPERF_PORT,
            sockperf_port: SOCKPERF_PORT,
            cgroup: None,
        }
    }
}

/// The iperf3 and sockperf servers in a server namespace, killed by PID on drop.
pub struct Servers {
    _iperf: Background,
    _sockperf: Background,
}

impl Servers {
    pub fn start(topology: &dyn Topology, log_dir: &Path) -> Result<Self> {
        Self::start_in(topology.server(), topology.server_ip(), log_dir)
    }

    /// Both servers in `server`, bound to `ip` (which may also be the "outside" of a host).
    pub fn start_in(server: &Netns, ip: Ipv4Addr, log_dir: &Path) -> Result<Self> {
        let ip = ip.to_string();
        let iperf = Background::spawn(
            "iperf3 server",
            &mut server.exec("iperf3", ["-s", "-B", &ip, "-p", &IPERF_PORT.to_string()]),
            &log_dir.join(format!("{}-iperf3.log", server.name())),
        )?;
        let sockperf = Background::spawn(
            "sockperf server",
            &mut server.exec(
                "sockperf",
                [
                    "server",
                    "--tcp",
                    "-i",
                    &ip,
                    "-p",
                    &SOCKPERF_PORT.to_string(),
                ],
            ),
            &log_dir.join(format!("{}-sockperf.log", server.name())),
        )?;
        wait_for_listeners(server, &[IPERF_PORT, SOCKPERF_PORT])?;
        Ok(Self {
            _iperf: iperf,
            _sockperf: sockperf,
        })
    }
}

/// Waits (at most 10 s) until every port has a TCP listener in `netns`.
pub fn wait_for_listeners(netns: &Netns, ports: &[u16]) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        interrupt::check()?;
        let listening = cmd::capture(&mut netns.exec("ss", ["-Hltn"])).unwrap_or_default();
        let up = |port: &u16| listening.contains(&format!(":{port} "));
        if ports.iter().all(up) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "no listener on ports {ports:?} in {} after 10 s",
                netns.name()
            );
        }
        sleep(Duration::from_millis(100));
    }
}

/// Receiver-side UDP packets per second with 64-byte payloads, sender unthrottled.
pub fn udp_small_packet_rate(target: &Target, seconds: u32) -> Result<f64> {
    let report = iperf3_json(target, seconds, &["-u", "-l", UDP_PAYLOAD, "-b", "0"])?;
    let received = &report["end"]["sum_received"];
    let packets = received["packets"]
        .as_f64()
        .context("no end.sum_received.packets")?;
    // iperf3 counts the highest sequence seen as `packets`; the lost ones never arrived.
    let lost = received["lost_packets"].as_f64().unwrap_or(0.0);
    let seconds = received["seconds"]
        .as_f64()
        .context("no end.sum_received.seconds")?;
    Ok((packets - lost) / seconds)
}

/// Receiver-side TCP throughput in bits per second.
pub fn tcp_throughput(target: &Target, seconds: u32) -> Result<f64> {
    let report = iperf3_json(target, seconds, &[])?;
    report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second")
}

/// TCP ping-pong round-trip time: (median, p99) in microseconds.
pub fn tcp_round_trip(target: &Target, seconds: u32) -> Result<(f64, f64)> {
    let ip = target.ip.to_string();
    let port = target.sockperf_port.to_string();
    let duration = seconds.to_string();
    let args = [
        "ping-pong",
        "--tcp",
        "-i",
        &ip,
        "-p",
        &port,
        "-m",
        "64",
        "-t",
        &duration,
    ];
    let output = with_retries(|| client_run(target, seconds, "sockperf", &args))?;
    let p50 = sockperf_percentile(&output, "50.000").context("sockperf printed no median")?;
    let p99 = sockperf_percentile(&output, "99.000").context("sockperf printed no p99")?;
    Ok((p50, p99))
}

fn iperf3_json(target: &Target, seconds: u32, extra: &[&str]) -> Result<serde_json::Value> {
    let ip = target.ip.to_string();
    let port = target.iperf_port.to_string();
    let duration = seconds.to_string();
    let mut args = vec!["-c", &ip, "-p", &port, "-t", &duration, "-J"];
    args.extend_from_slice(extra);
    let output = with_retries(|| client_run(target, seconds, "iperf3", &args))?;
    serde_json::from_str(&output).context("iperf3 printed no JSON")
}

/// Runs a client tool in the client namespace under `timeout`, returning its stdout.
fn client_run(target: &Target, seconds: u32, tool: &str, args: &[&str]) -> Result<String> {
    interrupt::check()?;
    let limit = (seconds + 15).to_string();
    let mut command = match target.cgroup {
        // The shell moves itself into the cgroup, then becomes `timeout`: everything the
        // client starts inherits the cgroup, nothing else on the machine joins it.
        Some(cgroup) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", r#"echo $$ > "$0/cgroup.procs" && exec "$@""#])
                .arg(cgroup)
                .arg("timeout");
            sh
        }
        None => Command::new("timeout"),
    };
    command.args([
        "--kill-after=5",
        &limit,
        "ip",
        "netns",
        "exec",
        target.client.name(),
        tool,
    ]);
    command.args(args);
    cmd::capture(&mut command)
}

fn with_retries(mut run: impl FnMut() -> Result<String>) -> Result<String> {
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        match run() {
            Ok(output) => return Ok(output),
            Err(error) => {
                interrupt::check()?;
                last_error = Some(error);
                sleep(Duration::from_millis(500));
            }
        }
    }
    Err(last_error.expect("at least one attempt"))
}

/// Reads "sockperf: ---> percentile 50.000 =   36.724" (after stripping colour codes).
fn sockperf_percentile(output: &str, percentile: &str) -> Option<f64> {
    let needle = format!("percentile {percentile} =");
    output
        .lines()
        .find_map(|line| line.split_once(&needle).map(|(_, value)| value))
        .and_then(|value| strip_ansi(value).trim().parse().ok())
}

fn strip_ansi(text: &str) -> String {
    let mut plain = String::new();
    let mut in_escape = false;
    for c in text.chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => plain.push(c),
        }
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sockperf_percentiles() {
        let output = "sockperf: ---> percentile 99.000 =  192.324\nsockperf: ---> percentile 50.000 =   36.724\n";
        assert_eq!(sockperf_percentile(output, "50.000"), Some(36.724));
        assert_eq!(sockperf_percentile(output, "99.000"), Some(192.324));
        assert_eq!(sockperf_percentile(output, "90.000"), None);
    }
}
