//! Medians and percentiles of repeated measurements, and bootstrap confidence intervals.

use std::time::Duration;

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples; None when there are none.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn median(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// Resamples for a bootstrap confidence interval.
const BOOTSTRAP_RESAMPLES: usize = 2000;

/// The 95% bootstrap confidence interval (low, high) of `statistic` over `groups`: each group
/// is resampled with replacement on its own, 2000 times. Deterministic, so that the same data
/// give the same interval. None if the statistic is undefined on every resample.
pub fn bootstrap_interval(
    groups: &[&[f64]],
    statistic: impl Fn(&[Vec<f64>]) -> Option<f64>,
) -> Option<(f64, f64)> {
    let mut random = SplitMix64(0x6e65_7464);
    let mut resample = |from: &[f64]| -> Vec<f64> {
        (0..from.len())
            .map(|_| from[(random.next() % from.len() as u64) as usize])
            .collect()
    };
    let estimates: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .filter_map(|_| {
            let resampled: Vec<Vec<f64>> = groups.iter().map(|group| resample(group)).collect();
            statistic(&resampled)
        })
        .collect();
    Some((percentile(&estimates, 2.5)?, percentile(&estimates, 97.5)?))
}

/// A small deterministic generator for the bootstrap.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Latency summary of a timed loop, in milliseconds.
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub count: usize,
}

impl Latency {
    pub fn from_durations(samples: &[Duration]) -> Self {
        let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        Self {
            p50_ms: median(&ms).unwrap_or(f64::NAN),
            p99_ms: percentile(&ms, 99.0).unwrap_or(f64::NAN),
            count: ms.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let samples = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(median(&samples), Some(3.0));
        assert_eq!(percentile(&samples, 99.0), Some(5.0));
        assert_eq!(percentile(&samples, 0.0), Some(1.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn bootstrap_brackets_the_estimate() {
        let samples = [10.0, 11.0, 9.0, 10.5, 9.5];
        let (low, high) = bootstrap_interval(&[&samples], |g| median(&g[0])).unwrap();
        assert!(low <= 10.0 && high >= 10.0 && low >= 9.0 && high <= 11.0);
        assert_eq!(bootstrap_interval(&[&[]], |g| median(&g[0])), None);
    }
}
