//! Every training knob, saved with every checkpoint.

use serde::{Deserialize, Serialize};

use crate::audio::{FbankConfig, FeatureStats, SpecAugmentConfig};
use crate::data::ShapeBuckets;
use crate::gates::GateConfig;
use crate::infer::Scorer;
use crate::limits::{ConfigError, first_failure};
use crate::model::{ConformerConfig, Preset};
use crate::optim::OptimConfig;

/// A training run's whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub preset: Preset,
    pub model: ConformerConfig,
    pub optim: OptimConfig,
    pub fbank: FbankConfig,
    pub spec_augment: SpecAugmentConfig,
    /// Speed-perturbation factors for the training split (1.0 is the original audio).
    pub speed_perturbation: Vec<f64>,
    /// Share of the training split's recorded utterances to train on, every k-th in id order
    /// (`data::keep_share`), for studies of a model that is large for its data. 1: all.
    #[serde(default = "whole_split")]
    pub train_share: f64,
    /// Optimiser steps in the run (sets the schedule's length).
    pub steps: usize,
    /// Padded input frames per batch (batch size × longest utterance); seconds of audio times
    /// `fbank.frames_per_second()`.
    pub max_batch_frames: usize,
    /// Rounding of padded batch shapes (exact by default; the browser buckets them so WebGPU
    /// compiles a few kernel shapes instead of one per step).
    #[serde(default)]
    pub shape_buckets: ShapeBuckets,
    pub seed: u64,
    /// Evaluate on the dev split every this many steps (0: only at the end).
    pub eval_every: usize,
    /// Pruning method and gate settings (absent in checkpoints from before pruning: dense).
    #[serde(default)]
    pub prune: GateConfig,
    /// Layer-wise distillation from a teacher (`None`: none).
    #[serde(default)]
    pub distill: Option<super::DistillConfig>,
    /// Threads each batch is split over (native backends; 1 in the browser). Each computes the
    /// gradient of its share on its own copy of the model, and their sum makes one update, so
    /// a run with the same seed and shard count gives the same weights on any machine.
    #[serde(default = "one_shard")]
    pub shards: usize,
}

fn one_shard() -> usize {
    1
}

fn whole_split() -> f64 {
    1.0
}

impl TrainConfig {
    /// How models of a run with this config and feature statistics `stats` are scored: its
    /// architecture and batch budget (every front door scores a run's cuts through this).
    pub fn scorer<'a>(&'a self, stats: &'a FeatureStats) -> Scorer<'a> {
        Scorer {
            config: &self.model,
            stats,
            max_batch_frames: self.max_batch_frames,
        }
    }

    /// Defaults for a preset, tuned for the built-in corpus on a 2-core CPU.
    pub fn for_preset(preset: Preset, vocab_size: usize) -> Self {
        let fbank = FbankConfig::default();
        Self {
            preset,
            model: preset.config(fbank.num_bins, vocab_size),
            optim: OptimConfig::default(),
            fbank,
            spec_augment: SpecAugmentConfig::default(),
            speed_perturbation: vec![0.9, 1.0, 1.1],
            train_share: whole_split(),
            steps: 4000,
            max_batch_frames: 4000,
            shape_buckets: ShapeBuckets::default(),
            seed: 0,
            eval_every: 500,
            prune: GateConfig::default(),
            distill: None,
            shards: 1,
        }
    }

    /// Checks ranges a user can get wrong; the message names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let o = &self.optim;
        limit::STEPS.check_count(self.steps)?;
        limit::MAX_BATCH_FRAMES.check_count(self.max_batch_frames)?;
        limit::PEAK_LR.check(o.peak_lr)?;
        limit::FINAL_LR_FRACTION.check(o.final_lr_fraction)?;
        limit::GRAD_CLIP_NORM.check(f64::from(o.grad_clip_norm))?;
        limit::WEIGHT_DECAY.check(f64::from(o.weight_decay))?;
        limit::DROPOUT.check(self.model.dropout)?;
        limit::SHARDS.check_count(self.shards)?;
        limit::TRAIN_SHARE.check(self.train_share)?;
        if let Some(d) = &self.distill {
            first_failure([(
                d.kl_weight >= 0.0 && d.layer_weight >= 0.0 && (d.kl_weight + d.layer_weight).is_finite(),
                format!(
                    "distillation weights must be finite and ≥ 0 (got {} and {})",
                    d.kl_weight, d.layer_weight
                ),
            )])?;
        }
        self.model.validate()?;
        self.check_preset_label()?;
        self.check_features_and_batching()?;
        self.prune.validate()
    }
}

impl TrainConfig {
    /// A model with exactly another preset's dimensions must not be labelled with this one
    /// (`eval --preset` and the lab trust the label). Dimensions matching no preset (tests'
    /// small models) carry their label as given.
    fn check_preset_label(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        let dims = |c: &ConformerConfig| {
            (
                c.d_model,
                c.num_blocks,
                c.num_heads,
                c.d_ff,
                c.conv_kernel,
                c.subsampling_channels,
            )
        };
        match Preset::ALL
            .into_iter()
            .find(|p| dims(&p.config(m.num_bins, m.vocab_size)) == dims(m))
        {
            Some(actual) if actual != self.preset => Err(ConfigError(format!(
                "labelled preset `{}`, but the model has the `{}` preset's dimensions",
                self.preset.name(),
                actual.name()
            ))),
            _ => Ok(()),
        }
    }

    /// The parts a person never sets but a file can carry: feature extraction, augmentation,
    /// speed perturbation and batch shape rounding. Each would divide by zero, index past a
    /// feature, or resample to nothing if it were out of range.
    fn check_features_and_batching(&self) -> Result<(), ConfigError> {
        let (f, s, b) = (&self.fbank, &self.spec_augment, &self.shape_buckets);
        let ms = |v: f64| v > 0.0 && v <= 1000.0;
        // Kaldi's convention: a high edge ≤ 0 is that far below the Nyquist frequency.
        let nyquist = f64::from(f.sample_rate) / 2.0;
        let high = if f.high_freq <= 0.0 {
            nyquist + f.high_freq
        } else {
            f.high_freq
        };
        first_failure([
            (
                f.sample_rate == crate::audio::SAMPLE_RATE,
                format!(
                    "fbank sample_rate {} must be {}",
                    f.sample_rate,
                    crate::audio::SAMPLE_RATE
                ),
            ),
            (
                self.model.num_bins == f.num_bins,
                format!(
                    "the model reads {} mel bins, the features have {}",
                    self.model.num_bins, f.num_bins
                ),
            ),
            (
                ms(f.frame_length_ms)
                    && ms(f.frame_shift_ms)
                    && f.frame_shift_ms <= f.frame_length_ms
                    && f.frame_shift() >= 1
                    && f.frame_length() >= 2,
                format!(
                    "fbank frames of {} ms every {} ms must be in (0, 1000] ms, the shift no longer than the frame",
                    f.frame_length_ms, f.frame_shift_ms
                ),
            ),
            (
                (0.0..=1.0).contains(&f.preemphasis),
                format!("fbank preemphasis {} must be in [0, 1]", f.preemphasis),
            ),
            (
                f.low_freq >= 0.0 && f.low_freq < high && high <= nyquist,
                format!(
                    "fbank filters from {} Hz to {high} Hz must lie in [0, {nyquist}] Hz, low below high",
                    f.low_freq
                ),
            ),
            (
                s.freq_masks <= 64
                    && s.time_masks <= 64
                    && s.max_freq_width <= f.num_bins
                    && (0.0..=1.0).contains(&s.max_time_fraction),
                "spec_augment asks for more masking than the features have".to_string(),
            ),
            (
                !self.speed_perturbation.is_empty() && self.speed_perturbation.iter().all(|v| (0.5..=2.0).contains(v)),
                format!(
                    "speed_perturbation {:?} must be factors in [0.5, 2]",
                    self.speed_perturbation
                ),
            ),
            (
                (1..=100_000).contains(&b.frames) && (1..=100_000).contains(&b.tokens),
                format!(
                    "shape_buckets {} frames, {} tokens must be in [1, 100000]",
                    b.frames, b.tokens
                ),
            ),
        ])
    }
}

/// Ranges of the training knobs a person sets (see `crate::limits`).
pub mod limit {
    use crate::limits::{Bound, Limit};

    /// A billion steps is over a year at 25 steps a second; the bound keeps step arithmetic
    /// (schedules, snapshot and checkpoint counts) inside wasm32's `usize`, where a larger
    /// count would wrap.
    pub const STEPS: Limit = Limit::new("steps", Bound::Closed(1.0), Bound::Closed(1e9));
    /// From 1 s to 1 hour of audio at the default frame rate; a batch of an hour would not fit
    /// any machine's memory.
    pub const MAX_BATCH_FRAMES: Limit = Limit::new("max_batch_frames", Bound::Closed(100.0), Bound::Closed(360_000.0));
    pub const PEAK_LR: Limit = Limit::new("peak_lr", Bound::Open(0.0), Bound::Open(1.0));
    pub const FINAL_LR_FRACTION: Limit = Limit::new("final_lr_fraction", Bound::Closed(0.0), Bound::Closed(1.0));
    pub const GRAD_CLIP_NORM: Limit = Limit::new("grad_clip_norm", Bound::Open(0.0), Bound::None);
    pub const WEIGHT_DECAY: Limit = Limit::new("weight_decay", Bound::Closed(0.0), Bound::None);
    pub const DROPOUT: Limit = Limit::new("dropout", Bound::Closed(0.0), Bound::Open(1.0));
    pub const SHARDS: Limit = Limit::new("shards", Bound::Closed(1.0), Bound::Closed(64.0));
    pub const TRAIN_SHARE: Limit = Limit::new("train_share", Bound::Open(0.0), Bound::Closed(1.0));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_labelled_with_another_presets_name_is_refused() {
        let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
        config.validate().unwrap();
        config.preset = Preset::Medium;
        let err = config.validate().unwrap_err().to_string();
        assert_eq!(
            err,
            "labelled preset `medium`, but the model has the `tiny` preset's dimensions"
        );
        config.model.d_model = 32; // no preset's dimensions: the label stands
        config.validate().unwrap();
    }
}
