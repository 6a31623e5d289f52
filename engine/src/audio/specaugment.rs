//! SpecAugment (Park et al. 2019) without time warping: frequency and time masks on
//! normalised features, set to zero (the feature mean after normalisation).

use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// Masking policy. Defaults follow the LibriSpeech convention in `PAPERS.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecAugmentConfig {
    pub freq_masks: usize,
    /// Widest frequency mask, in bins.
    pub max_freq_width: usize,
    pub time_masks: usize,
    /// Widest time mask as a fraction of the utterance's frames.
    pub max_time_fraction: f64,
}

impl Default for SpecAugmentConfig {
    fn default() -> Self {
        Self {
            freq_masks: 2,
            max_freq_width: 27,
            time_masks: 2,
            max_time_fraction: 0.05,
        }
    }
}

/// Applies masks in place to row-major `[frames, num_bins]` features.
pub fn spec_augment(feats: &mut [f32], num_bins: usize, config: &SpecAugmentConfig, rng: &mut SplitMix64) {
    let frames = feats.len() / num_bins;
    for _ in 0..config.freq_masks {
        let width = rng.range_inclusive(0, config.max_freq_width.min(num_bins));
        let start = rng.range_inclusive(0, num_bins - width);
        for frame in feats.chunks_exact_mut(num_bins) {
            frame[start..start + width].iter_mut().for_each(|v| *v = 0.0);
        }
    }
    let max_time = (config.max_time_fraction * frames as f64) as usize;
    for _ in 0..config.time_masks {
        let width = rng.range_inclusive(0, max_time.min(frames));
        let start = rng.range_inclusive(0, frames - width);
        feats[start * num_bins..(start + width) * num_bins]
            .iter_mut()
            .for_each(|v| *v = 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_stay_within_their_limits() {
        let (frames, bins) = (200, 80);
        let config = SpecAugmentConfig::default();
        for seed in 0..20 {
            let mut feats = vec![1.0f32; frames * bins];
            spec_augment(&mut feats, bins, &config, &mut SplitMix64::new(seed));
            let zeroed_bins = (0..bins)
                .filter(|&b| (0..frames).all(|t| feats[t * bins + b] == 0.0))
                .count();
            let zeroed_frames = (0..frames)
                .filter(|&t| feats[t * bins..(t + 1) * bins].iter().all(|&v| v == 0.0))
                .count();
            assert!(zeroed_bins <= 2 * 27, "seed {seed}: {zeroed_bins} bins masked");
            assert!(
                zeroed_frames <= 2 * 10 || zeroed_bins == bins,
                "seed {seed}: {zeroed_frames} frames masked"
            );
        }
    }

    #[test]
    fn same_seed_same_masks() {
        let mut a = vec![1.0f32; 100 * 80];
        let mut b = a.clone();
        spec_augment(&mut a, 80, &SpecAugmentConfig::default(), &mut SplitMix64::new(3));
        spec_augment(&mut b, 80, &SpecAugmentConfig::default(), &mut SplitMix64::new(3));
        assert_eq!(a, b);
    }
}
