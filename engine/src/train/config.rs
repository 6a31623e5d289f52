//! Every training knob, saved with every checkpoint.

use serde::{Deserialize, Serialize};

use crate::audio::{FbankConfig, SpecAugmentConfig};
use crate::data::ShapeBuckets;
use crate::gates::GateConfig;
use crate::model::{ConformerConfig, Preset};

/// Optimiser and schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Peak learning rate, reached at the end of warm-up.
    pub peak_lr: f64,
    pub warmup_steps: usize,
    /// The learning rate decays along a cosine to `peak_lr × final_lr_fraction` at the last step.
    pub final_lr_fraction: f64,
    pub weight_decay: f32,
    /// Each parameter's gradient is clipped to this L2 norm (burn clips per tensor, not globally).
    pub grad_clip_norm: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            peak_lr: 2e-3,
            warmup_steps: 200,
            final_lr_fraction: 0.05,
            weight_decay: 1e-3,
            grad_clip_norm: 5.0,
        }
    }
}

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
    /// Optimiser steps in the run (sets the schedule's length).
    pub steps: usize,
    /// Padded input frames per batch (batch size × longest utterance); 100 frames = 1 s.
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

impl TrainConfig {
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
    pub fn validate(&self) -> Result<(), String> {
        let o = &self.optim;
        let checks = [
            (self.steps > 0, "steps must be at least 1".to_string()),
            (
                self.max_batch_frames >= 100,
                format!("max_batch_frames {} is below 100 (1 s)", self.max_batch_frames),
            ),
            (
                o.peak_lr > 0.0 && o.peak_lr < 1.0,
                format!("peak_lr {} must be in (0, 1)", o.peak_lr),
            ),
            (
                (0.0..=1.0).contains(&o.final_lr_fraction),
                format!("final_lr_fraction {} must be in [0, 1]", o.final_lr_fraction),
            ),
            (
                o.grad_clip_norm > 0.0,
                format!("grad_clip_norm {} must be positive", o.grad_clip_norm),
            ),
            (
                o.weight_decay >= 0.0,
                format!("weight_decay {} must not be negative", o.weight_decay),
            ),
            (
                (0.0..1.0).contains(&self.model.dropout),
                format!("dropout {} must be in [0, 1)", self.model.dropout),
            ),
            (
                (1..=64).contains(&self.shards),
                format!("shards {} must be between 1 and 64", self.shards),
            ),
        ];
        checks
            .into_iter()
            .find(|(ok, _)| !ok)
            .map_or(Ok(()), |(_, message)| Err(message))?;
        if let Some(d) = &self.distill
            && !(d.kl_weight >= 0.0 && d.layer_weight >= 0.0 && (d.kl_weight + d.layer_weight).is_finite())
        {
            return Err(format!(
                "distillation weights must be finite and ≥ 0 (got {} and {})",
                d.kl_weight, d.layer_weight
            ));
        }
        self.prune.validate()
    }
}
