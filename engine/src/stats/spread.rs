//! Summaries of a handful of numbers: percentiles and mean ± standard deviation.

use serde::{Deserialize, Serialize};

/// The `q`-th quantile (`q` in `[0, 1]`) of `sorted` (ascending), interpolating linearly
/// between the two nearest ranks: position `q·(n−1)`. This is NumPy's default ("linear",
/// Hyndman & Fan's type 7), so a reference computed with `numpy.percentile` agrees exactly.
/// `None` for an empty slice.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    let weight = position - below as f64;
    Some(sorted[below] + weight * (sorted[above] - sorted[below]))
}

/// The median of `values` in any order (the mean of the middle two of an even count); `None`
/// when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    percentile(&sorted, 0.5)
}

/// Mean and sample standard deviation (divisor `n − 1`; 0 for a single value).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
    /// How many values (seeds) it rests on.
    pub n: usize,
}

/// Mean ± sample standard deviation of `values`; `None` when there are none.
pub fn mean_sd(values: &[f64]) -> Option<MeanSd> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let sd = if n < 2 {
        0.0
    } else {
        (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
    };
    Some(MeanSd { mean, sd, n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn percentile_interpolates_between_ranks_like_numpy() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        // numpy.percentile([1, 2, 4, 8], [0, 25, 50, 97.5, 100]) = 1, 1.75, 3, 7.7, 8
        let expected = [(0.0, 1.0), (0.25, 1.75), (0.5, 3.0), (0.975, 7.7), (1.0, 8.0)];
        for (q, want) in expected {
            let got = percentile(&sorted, q).unwrap();
            assert!((got - want).abs() < 1e-12, "q {q}: {got} != {want}");
        }
        assert_eq!(percentile(&[5.0], 0.3), Some(5.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn mean_and_sample_sd() {
        let s = mean_sd(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]).unwrap();
        assert_eq!(s.mean, 5.0);
        // Sum of squared deviations is 32, over n − 1 = 7.
        assert!((s.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_sd(&[3.0]).unwrap().sd, 0.0);
        assert!(mean_sd(&[]).is_none());
    }
}
