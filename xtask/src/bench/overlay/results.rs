//! What the overlay part measured: one run per layout (samples per round), the encap/decap
//! program cost, and what could not be measured and why.

use crate::bench::prog_cost::Case;
use crate::bench::results::{kind_median, labelled, Metric, TopologyRun};
use crate::bench::stats::{bootstrap_interval, median};
use crate::bench::topology::Kind;

/// Fewer samples give no meaningful interval.
const MIN_SAMPLES_FOR_INTERVAL: usize = 3;

/// The layout the targets compare netd with.
pub const BASELINE: Kind = Kind::VxlanBridge;
pub const NETD: Kind = Kind::NetdOverlay;

pub struct OverlayResults {
    /// The floor, the baseline and netd, in that order.
    pub topologies: Vec<TopologyRun>,
    /// BPF_PROG_TEST_RUN cost of the cases `encap` and `decap`.
    pub prog_cost: Result<Vec<Case>, String>,
}

impl OverlayResults {
    /// The samples of a layout, if there are enough for an interval.
    fn samples(&self, kind: Kind, metric: Metric) -> Option<Vec<f64>> {
        let run = self.topologies.iter().find(|run| run.kind == kind)?;
        Some(metric.samples(run)).filter(|s| s.len() >= MIN_SAMPLES_FOR_INTERVAL)
    }

    pub fn median(&self, kind: Kind, metric: Metric) -> Option<f64> {
        kind_median(&self.topologies, kind, metric)
    }

    /// The 95% bootstrap confidence interval of the median.
    pub fn interval(&self, kind: Kind, metric: Metric) -> Option<(f64, f64)> {
        let samples = self.samples(kind, metric)?;
        bootstrap_interval(&[&samples], |resampled| median(&resampled[0]))
    }

    /// netd's median over the baseline's.
    pub fn ratio(&self, metric: Metric) -> Option<f64> {
        quotient(self.median(NETD, metric)?, self.median(BASELINE, metric)?)
    }

    /// The 95% bootstrap confidence interval of [`OverlayResults::ratio`], both layouts'
    /// samples resampled on their own.
    pub fn ratio_interval(&self, metric: Metric) -> Option<(f64, f64)> {
        let netd = self.samples(NETD, metric)?;
        let baseline = self.samples(BASELINE, metric)?;
        bootstrap_interval(&[&netd, &baseline], |resampled| {
            quotient(median(&resampled[0])?, median(&resampled[1])?)
        })
    }

    /// Every error, prefixed with its layout.
    pub fn errors(&self) -> Vec<String> {
        let mut errors = labelled(&self.topologies, |run| &run.errors);
        if let Err(error) = &self.prog_cost {
            errors.push(format!("encap/decap cost: {error}"));
        }
        errors
    }

    pub fn has_failures(&self) -> bool {
        !self.errors().is_empty()
    }
}

fn quotient(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then_some(a / b)
}
