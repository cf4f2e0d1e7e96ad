//! What the engines part measured: container start latencies pooled over the rounds, the
//! footprint of 100 published ports, and what could not be measured and why.

use super::super::stats::{bootstrap_interval, median, percentile};

/// What is started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Case {
    /// `docker run -d` of a container on a network.
    DockerRun,
    /// The same with 100 published ports.
    DockerRunPorts,
    /// `podman run -d` with the CNI backend.
    PodmanRun,
}

impl Case {
    pub const ALL: [Case; 3] = [Case::DockerRun, Case::DockerRunPorts, Case::PodmanRun];

    pub fn title(self) -> &'static str {
        match self {
            Case::DockerRun => {
                "`docker run -d`: Docker's bridge network vs. a netd network (Docker plugin)"
            }
            Case::DockerRunPorts => {
                "`docker run -d` with 100 published ports: Docker's bridge network vs. netd"
            }
            Case::PodmanRun => {
                "`podman run -d`: CNI bridge+portmap+firewall+tuning vs. the netd CNI plugin"
            }
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            Case::DockerRun => "docker run -d",
            Case::DockerRunPorts => "docker run -d, 100 -p",
            Case::PodmanRun => "podman run -d",
        }
    }
}

/// The reference network of each case, or netd.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    Baseline,
    Netd,
}

impl Side {
    pub const ALL: [Side; 2] = [Side::Baseline, Side::Netd];

    /// Position in [`Side::ALL`].
    pub fn index(self) -> usize {
        match self {
            Side::Baseline => 0,
            Side::Netd => 1,
        }
    }

    pub fn label(self, case: Case) -> &'static str {
        match (self, case) {
            (Side::Baseline, Case::PodmanRun) => "CNI bridge",
            (Side::Baseline, _) => "Docker bridge",
            (Side::Netd, Case::PodmanRun) => "netd CNI",
            (Side::Netd, _) => "netd plugin",
        }
    }
}

/// Start latencies of one case and side, in ms: every container of every round.
pub struct StartRun {
    pub case: Case,
    pub side: Side,
    pub samples_ms: Vec<f64>,
    pub errors: Vec<String>,
}

/// What 100 published ports cost besides time, one sample per round.
pub struct Footprint {
    pub side: Side,
    /// docker-proxy processes among dockerd's children while the container runs.
    pub proxies: Vec<usize>,
    /// Their resident memory, in all.
    pub proxy_rss_mib: Vec<f64>,
    /// netd's daemon (netd side only) before the `docker run` and while the container runs.
    pub netd_rss_before_mib: Vec<f64>,
    pub netd_rss_after_mib: Vec<f64>,
    pub netd_children: Vec<usize>,
}

pub struct EnginesResults {
    /// Containers per side and round (cases DockerRun and PodmanRun).
    pub containers: u32,
    pub ports: u32,
    pub runs: Vec<StartRun>,
    /// Back-to-back starts of cases DockerRun and PodmanRun: their differences are not
    /// spread by the machine's drift, which the pooled samples are.
    pub pairs: Vec<(Case, Vec<Pair>)>,
    pub footprints: Vec<Footprint>,
    /// Versions, setup facts, sanity checks that passed.
    pub notes: Vec<String>,
    /// Failures that belong to no single case (e.g. a sanity check).
    pub errors: Vec<String>,
}

impl EnginesResults {
    pub fn new(containers: u32, ports: u32) -> Self {
        let runs = Case::ALL
            .iter()
            .flat_map(|&case| {
                Side::ALL.iter().map(move |&side| StartRun {
                    case,
                    side,
                    samples_ms: Vec::new(),
                    errors: Vec::new(),
                })
            })
            .collect();
        let footprints = Side::ALL
            .iter()
            .map(|&side| Footprint {
                side,
                proxies: Vec::new(),
                proxy_rss_mib: Vec::new(),
                netd_rss_before_mib: Vec::new(),
                netd_rss_after_mib: Vec::new(),
                netd_children: Vec::new(),
            })
            .collect();
        Self {
            containers,
            ports,
            runs,
            pairs: Case::ALL.iter().map(|&case| (case, Vec::new())).collect(),
            footprints,
            notes: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn run(&self, case: Case, side: Side) -> &StartRun {
        self.runs
            .iter()
            .find(|r| r.case == case && r.side == side)
            .expect("a run for every case and side")
    }

    pub fn run_mut(&mut self, case: Case, side: Side) -> &mut StartRun {
        self.runs
            .iter_mut()
            .find(|r| r.case == case && r.side == side)
            .expect("a run for every case and side")
    }

    pub fn pairs_mut(&mut self, case: Case) -> &mut Vec<Pair> {
        &mut self
            .pairs
            .iter_mut()
            .find(|(c, _)| *c == case)
            .expect("pairs for every case")
            .1
    }

    /// netd − baseline over the back-to-back pairs: the mean of the median difference of the
    /// pairs where netd started first and of those where it started second (so that any
    /// advantage of going first or second cancels), with a 95% bootstrap confidence interval.
    /// None with fewer than 3 pairs of either order.
    pub fn paired_difference(&self, case: Case) -> Option<PairedDifference> {
        let pairs = &self.pairs.iter().find(|(c, _)| *c == case)?.1;
        let stratum = |netd_first: bool| -> Vec<f64> {
            pairs
                .iter()
                .filter(|pair| pair.netd_first == netd_first)
                .map(|pair| pair.netd_ms - pair.baseline_ms)
                .collect()
        };
        let (first, second) = (stratum(true), stratum(false));
        if first.len() < 3 || second.len() < 3 {
            return None;
        }
        let estimate = |a: &[f64], b: &[f64]| Some((median(a)? + median(b)?) / 2.0);
        let (low_ms, high_ms) = bootstrap_interval(&[&first, &second], |strata| {
            estimate(&strata[0], &strata[1])
        })?;
        Some(PairedDifference {
            median_ms: estimate(&first, &second)?,
            low_ms,
            high_ms,
            pairs: pairs.len(),
        })
    }

    pub fn footprint(&self, side: Side) -> &Footprint {
        self.footprints
            .iter()
            .find(|f| f.side == side)
            .expect("a footprint per side")
    }

    pub fn footprint_mut(&mut self, side: Side) -> &mut Footprint {
        self.footprints
            .iter_mut()
            .find(|f| f.side == side)
            .expect("a footprint per side")
    }

    pub fn p50_ms(&self, case: Case, side: Side) -> Option<f64> {
        percentile(&self.run(case, side).samples_ms, 50.0)
    }

    pub fn p90_ms(&self, case: Case, side: Side) -> Option<f64> {
        percentile(&self.run(case, side).samples_ms, 90.0)
    }

    /// Every error, prefixed with its case and side.
    pub fn all_errors(&self) -> Vec<String> {
        let mut errors = self.errors.clone();
        for run in &self.runs {
            for error in &run.errors {
                errors.push(format!(
                    "{} ({}): {error}",
                    run.case.short(),
                    run.side.label(run.case)
                ));
            }
        }
        errors
    }

    pub fn has_failures(&self) -> bool {
        !self.errors.is_empty() || self.runs.iter().any(|r| !r.errors.is_empty())
    }
}

/// One start per side, back to back.
pub struct Pair {
    pub baseline_ms: f64,
    pub netd_ms: f64,
    pub netd_first: bool,
}

/// netd − baseline over back-to-back pairs of starts.
pub struct PairedDifference {
    pub median_ms: f64,
    pub low_ms: f64,
    pub high_ms: f64,
    pub pairs: usize,
}

/// Median of whole-number samples (counts), as a float for the report.
pub fn median_count(samples: &[usize]) -> Option<f64> {
    let values: Vec<f64> = samples.iter().map(|&n| n as f64).collect();
    percentile(&values, 50.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_difference_cancels_the_order() {
        let mut engines = EnginesResults::new(20, 100);
        assert!(engines.paired_difference(Case::DockerRun).is_none());
        // netd is 5 ms slower; whoever goes second is 20 ms faster.
        for i in 0..20 {
            let netd_first = i % 2 == 0;
            let jitter = f64::from(i % 5);
            let (baseline, netd) = if netd_first {
                (280.0 + jitter, 305.0 + jitter)
            } else {
                (300.0 + jitter, 285.0 + jitter)
            };
            engines.pairs_mut(Case::DockerRun).push(Pair {
                baseline_ms: baseline,
                netd_ms: netd,
                netd_first,
            });
        }
        let diff = engines.paired_difference(Case::DockerRun).unwrap();
        assert_eq!(diff.pairs, 20);
        assert_eq!(diff.median_ms, 5.0);
        assert!(diff.low_ms <= 5.0 && diff.high_ms >= 5.0);
    }
}
