//! Medians and percentiles of repeated measurements.

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
}
