//! Everything one bench run measured, including what it could not measure and why.

use super::engines::EnginesResults;
use super::machine::Machine;
use super::nat::NatResults;
use super::prog_cost::Case;
use super::stats::{median, Latency};
use super::topology::Kind;

/// Samples of one topology, one entry per round.
pub struct TopologyRun {
    pub kind: Kind,
    pub udp_pps: Vec<f64>,
    pub tcp_bits_per_second: Vec<f64>,
    pub rtt_p50_us: Vec<f64>,
    pub rtt_p99_us: Vec<f64>,
    pub notes: Vec<String>,
    /// Setup or measurement failures; a topology with errors may still have some samples.
    pub errors: Vec<String>,
}

impl TopologyRun {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            udp_pps: Vec::new(),
            tcp_bits_per_second: Vec::new(),
            rtt_p50_us: Vec::new(),
            rtt_p99_us: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// The headline metrics, each a median over rounds.
#[derive(Clone, Copy)]
pub enum Metric {
    UdpKpps,
    TcpGbps,
    RttP50Us,
    RttP99Us,
}

impl Metric {
    pub const ALL: [Metric; 4] = [
        Metric::UdpKpps,
        Metric::TcpGbps,
        Metric::RttP50Us,
        Metric::RttP99Us,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Metric::UdpKpps => "UDP 64 B rate (kpps, receiver)",
            Metric::TcpGbps => "TCP throughput (Gbit/s)",
            Metric::RttP50Us => "TCP RTT p50 (µs)",
            Metric::RttP99Us => "TCP RTT p99 (µs)",
        }
    }

    /// The median of this metric's samples, in the unit of its title.
    pub fn median_of(self, run: &TopologyRun) -> Option<f64> {
        match self {
            Metric::UdpKpps => median(&run.udp_pps).map(|pps| pps / 1e3),
            Metric::TcpGbps => median(&run.tcp_bits_per_second).map(|bps| bps / 1e9),
            Metric::RttP50Us => median(&run.rtt_p50_us),
            Metric::RttP99Us => median(&run.rtt_p99_us),
        }
    }

    pub fn decimals(self) -> usize {
        match self {
            Metric::UdpKpps => 0,
            Metric::TcpGbps => 2,
            Metric::RttP50Us | Metric::RttP99Us => 1,
        }
    }
}

/// The container-to-container part: the three topologies, connect latency, program cost.
pub struct C2cResults {
    pub topologies: Vec<TopologyRun>,
    pub connect: Result<Latency, String>,
    pub prog_cost: Result<Vec<Case>, String>,
}

impl C2cResults {
    pub fn topology(&self, kind: Kind) -> Option<&TopologyRun> {
        self.topologies.iter().find(|run| run.kind == kind)
    }

    pub fn median(&self, kind: Kind, metric: Metric) -> Option<f64> {
        self.topology(kind).and_then(|run| metric.median_of(run))
    }

    /// True if any part failed or was not measured.
    pub fn has_failures(&self) -> bool {
        self.topologies.iter().any(|run| !run.errors.is_empty())
            || self.connect.is_err()
            || self.prog_cost.is_err()
    }
}

/// One bench run; a part left out with `--only` is None.
pub struct Results {
    pub date: String,
    pub time: String,
    pub machine: Machine,
    pub rounds: u32,
    pub seconds: u32,
    pub c2c: Option<C2cResults>,
    pub nat: Option<NatResults>,
    pub engines: Option<EnginesResults>,
}

impl Results {
    /// True if any part that ran failed or was not measured.
    pub fn has_failures(&self) -> bool {
        self.c2c.as_ref().is_some_and(C2cResults::has_failures)
            || self.nat.as_ref().is_some_and(NatResults::has_failures)
            || self
                .engines
                .as_ref()
                .is_some_and(EnginesResults::has_failures)
    }
}
