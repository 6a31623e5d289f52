//! Global mean/variance normalisation of features, with statistics from the training split.

use serde::{Deserialize, Serialize};

/// Per-bin mean and standard deviation of training features. Saved with every checkpoint so
/// that evaluation and the browser normalise exactly as training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureStats {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl FeatureStats {
    /// Statistics over all frames of `utterances` (each row-major `[frames, num_bins]`).
    /// Accumulates in f64 so long corpora do not lose precision.
    pub fn from_features<'a>(utterances: impl IntoIterator<Item = &'a [f32]>, num_bins: usize) -> Self {
        let mut sum = vec![0.0f64; num_bins];
        let mut sum_sq = vec![0.0f64; num_bins];
        let mut frames = 0usize;
        for feats in utterances {
            for frame in feats.chunks_exact(num_bins) {
                for ((s, q), &v) in sum.iter_mut().zip(&mut sum_sq).zip(frame) {
                    *s += f64::from(v);
                    *q += f64::from(v) * f64::from(v);
                }
                frames += 1;
            }
        }
        let n = frames.max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        // A floor keeps constant bins (e.g. all at the log floor) from dividing by zero.
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m).max(0.0).sqrt().max(1e-3)) as f32)
            .collect();
        Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Identity statistics (no normalisation), for tests and untrained models.
    pub fn identity(num_bins: usize) -> Self {
        Self {
            mean: vec![0.0; num_bins],
            std: vec![1.0; num_bins],
        }
    }

    pub fn num_bins(&self) -> usize {
        self.mean.len()
    }

    /// Statistics read from a file must fit the features (`num_bins` of each) and divide
    /// safely: finite means, finite positive deviations.
    pub fn check(&self, num_bins: usize) -> Result<(), String> {
        if self.mean.len() != num_bins || self.std.len() != num_bins {
            return Err(format!(
                "feature statistics have {} means and {} deviations for {num_bins} mel bins",
                self.mean.len(),
                self.std.len()
            ));
        }
        if !self.mean.iter().all(|m| m.is_finite()) || !self.std.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("feature statistics hold a non-finite mean or a deviation that is not above 0".into());
        }
        Ok(())
    }

    /// Normalises row-major `[frames, num_bins]` features in place.
    pub fn apply(&self, feats: &mut [f32]) {
        for frame in feats.chunks_exact_mut(self.num_bins()) {
            for ((v, m), s) in frame.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_training_features_have_zero_mean_unit_variance() {
        let a = [1.0f32, 10.0, 3.0, 14.0];
        let b = [5.0f32, 12.0];
        let stats = FeatureStats::from_features([&a[..], &b[..]], 2);
        assert!((stats.mean[0] - 3.0).abs() < 1e-6 && (stats.mean[1] - 12.0).abs() < 1e-6);
        let mut all = [a.to_vec(), b.to_vec()].concat();
        stats.apply(&mut all);
        let (m0, v0) = (
            all.iter().step_by(2).sum::<f32>() / 3.0,
            all.iter().step_by(2).map(|v| v * v).sum::<f32>() / 3.0,
        );
        assert!(m0.abs() < 1e-6 && (v0 - 1.0).abs() < 1e-5);
    }
}
