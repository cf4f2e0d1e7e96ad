//! Everything one bench run measured, including what it could not measure and why.

use super::engines::EnginesResults;
use super::machine::Machine;
use super::nat::NatResults;
use super::overlay::OverlayResults;
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

    /// This metric's samples, one per round, in the unit of its title.
    pub fn samples(self, run: &TopologyRun) -> Vec<f64> {
        let (samples, scale) = match self {
            Metric::UdpKpps => (&run.udp_pps, 1e3),
            Metric::TcpGbps => (&run.tcp_bits_per_second, 1e9),
            Metric::RttP50Us => (&run.rtt_p50_us, 1.0),
            Metric::RttP99Us => (&run.rtt_p99_us, 1.0),
        };
        samples.iter().map(|sample| sample / scale).collect()
    }

    /// The median of this metric's samples, in the unit of its title.
    pub fn median_of(self, run: &TopologyRun) -> Option<f64> {
        median(&self.samples(run))
    }

    pub fn decimals(self) -> usize {
        match self {
            Metric::UdpKpps => 0,
            Metric::TcpGbps => 2,
            Metric::RttP50Us | Metric::RttP99Us => 1,
        }
    }
}

/// The median of `metric` of the run of `kind` among `runs`, if it has samples.
pub fn kind_median(runs: &[TopologyRun], kind: Kind, metric: Metric) -> Option<f64> {
    runs.iter()
        .find(|run| run.kind == kind)
        .and_then(|run| metric.median_of(run))
}

/// Each run's `lines` (its notes or its errors), prefixed with the run's topology label.
pub fn labelled<'a>(
    runs: &'a [TopologyRun],
    lines: impl Fn(&'a TopologyRun) -> &'a [String],
) -> Vec<String> {
    runs.iter()
        .flat_map(|run| {
            lines(run)
                .iter()
                .map(move |line| format!("{}: {line}", run.kind.label()))
        })
        .collect()
}

/// The container-to-container part: the three topologies, connect latency, program cost.
pub struct C2cResults {
    pub topologies: Vec<TopologyRun>,
    pub connect: Result<Latency, String>,
    pub prog_cost: Result<Vec<Case>, String>,
}

impl C2cResults {
    pub fn median(&self, kind: Kind, metric: Metric) -> Option<f64> {
        kind_median(&self.topologies, kind, metric)
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
    pub overlay: Option<OverlayResults>,
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
            || self
                .overlay
                .as_ref()
                .is_some_and(OverlayResults::has_failures)
    }
}
