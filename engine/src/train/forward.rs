//! The first half of an optimiser step: a batch through the model, and every loss term; then
//! what the step reports (the readout read back from it) and what it differentiates to (each
//! module group's gradients).
//!
//! Written against borrowed modules so that the trainer's own model and a shard's copy of it
//! (see `shards`) go through the same code.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::Gradients;

use super::distill::valid_frames;
use super::gating::{block_masks, gate_layout};
use super::objective::BatchCtc;
use super::{LayerMaps, TrainConfig};
use crate::audio::FeatureStats;
use crate::data::Utterance;
use crate::gates::Gates;
use crate::infer::prepare_batch;
use crate::model::{Conformer, ConformerOutput, RunningStats};
use crate::rng::SplitMix64;

/// The modules a forward pass reads.
#[derive(Clone, Copy)]
pub(super) struct StepModules<'a> {
    pub model: &'a Conformer,
    pub gates: Option<&'a Gates>,
    /// The frozen teacher and the learned layer maps, when distilling.
    pub distillation: Option<(&'a Conformer, &'a LayerMaps)>,
}

/// Which step, and which part of its batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepPosition {
    pub step: usize,
    /// `Some(i)`: shard `i` of a split batch (its own augmentation and gate draws, and only
    /// shard 0 adds the batch-independent gate penalty); `None`: the whole batch.
    pub shard: Option<usize>,
}

impl StepPosition {
    /// The name of a random stream for this step (and shard).
    pub fn stream(&self, what: &str) -> String {
        match self.shard {
            None => format!("{what}-{}", self.step),
            Some(i) => format!("{what}-{}-shard-{i}", self.step),
        }
    }

    fn adds_penalty(&self) -> bool {
        self.shard.is_none_or(|i| i == 0)
    }
}

/// A step between its forward pass and its update: what to read back, and what to differentiate.
pub(super) struct PendingStep {
    /// `[4]`: CTC loss, gate penalty, L0 expected sparsity (NaN otherwise), distillation loss.
    pub readout: Tensor<1>,
    /// The sum that is back-propagated.
    pub objective: Tensor<1>,
    /// BatchNorm statistics from before the forward pass, put back if the step is skipped.
    pub running_stats: RunningStats,
}

/// `utterances` through `modules` on `device` (an autodiff device), with the CTC loss, the gate
/// penalty and the distillation loss. `weight` scales the batch-dependent terms in the
/// objective (a shard's share of the whole batch; 1 for a whole batch).
pub(super) fn forward_pass(
    modules: StepModules<'_>,
    config: &TrainConfig,
    stats: &FeatureStats,
    device: &Device,
    position: StepPosition,
    utterances: &[&Utterance],
    weight: f64,
) -> PendingStep {
    let augment_seed = SplitMix64::derive(config.seed, &position.stream("augment")).next_u64();
    let prepared = prepare_batch(
        utterances,
        stats,
        Some((&config.spec_augment, augment_seed)),
        config.shape_buckets,
        device,
    );
    let prune = &config.prune;
    let masks = modules.gates.map_or_else(Vec::new, |gates| {
        let mut rng = SplitMix64::derive(config.seed, &position.stream("gates"));
        let regularised = position.adds_penalty().then_some((position.step, config.steps));
        let mut masks = block_masks(gates.sample(prune, utterances.len(), &mut rng, regularised));
        let replaces = prune.gate_kind().is_some_and(|k| k.replaces_ffn_dropout());
        masks.iter_mut().for_each(|m| m.ffn_masks_are_dropout = replaces);
        masks
    });
    let teacher = modules.distillation.map(|(teacher, _)| {
        // The teacher runs without autodiff (and so without dropout); its outputs re-enter the
        // graph as constants.
        let out = teacher.forward(prepared.feats.clone().inner(), &prepared.batch.frame_lengths);
        ConformerOutput {
            logits: Tensor::from_inner(out.logits),
            hidden: out.hidden.into_iter().map(Tensor::from_inner).collect(),
            lengths: out.lengths,
        }
    });
    // Everything the pass reads from the host is uploaded before it (the features above, the
    // gates' draws, the padding and the loss's plan here): the pass itself uploads nothing.
    let frames = prepared.feats.dims()[1];
    let (padding, lengths) = Conformer::subsampled_padding(&prepared.batch.frame_lengths, frames, device);
    let ctc = BatchCtc::new(&prepared.batch, &lengths, prepared.targets, device);
    let running_stats = modules.model.running_stats();
    let output = modules.model.forward_padded(prepared.feats, &padding, lengths, &masks);
    let distill = match (modules.distillation, &teacher, &config.distill) {
        (Some((_, maps)), Some(t), Some(distill_config)) => {
            let frames = output.logits.dims()[1];
            let valid = valid_frames(&output.lengths, frames, device);
            maps.loss(distill_config, &output, t, valid)
        }
        _ => Tensor::zeros([1], device),
    };
    let ctc = ctc.loss(output.logits, &prepared.batch, &output.lengths);
    let layout = gate_layout(&config.model);
    let penalty = match modules.gates {
        Some(gates) if position.adds_penalty() => gates.penalty(prune, layout, position.step, config.steps),
        _ => Tensor::zeros([1], device),
    };
    let sparsity = match (modules.gates, prune.gate_kind()) {
        (Some(gates), Some(kind)) if position.adds_penalty() => kind.expected_sparsity(&gates.tensors(), layout),
        _ => None,
    }
    .unwrap_or_else(|| Tensor::full([1], f32::NAN, device));
    // The numbers the host needs, in one tensor so that one read-back fetches them all.
    let readout = Tensor::cat(
        vec![ctc.clone(), penalty.clone(), sparsity.detach(), distill.clone()],
        0,
    );
    let batch_terms = ctc + distill;
    // A whole batch keeps its exact objective; a shard's share is scaled so shard gradients add up.
    let batch_terms = if weight == 1.0 {
        batch_terms
    } else {
        batch_terms.mul_scalar(weight)
    };
    PendingStep {
        readout,
        objective: batch_terms + penalty,
        running_stats,
    }
}

/// The host copy of a forward pass's readout tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct Readout {
    pub loss: f32,
    pub penalty: f32,
    /// L0's expected sparsity (NaN for other methods).
    pub expected_sparsity: f32,
    pub distill: f32,
}

impl Readout {
    /// From the `[4]` values read back (missing values are NaN, which skips the step).
    pub fn from_values(values: &[f32]) -> Self {
        let value = |i: usize| values.get(i).copied().unwrap_or(f32::NAN);
        Self {
            loss: value(0),
            penalty: value(1),
            expected_sparsity: value(2),
            distill: value(3),
        }
    }

    /// Whether the step can be taken: a non-finite loss or penalty would wreck the weights.
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite() && self.penalty.is_finite()
    }
}

/// A step's gradients for the model, the distillation maps and the gates.
pub(super) struct StepGradients {
    pub model: GradientsParams,
    pub maps: Option<GradientsParams>,
    pub gates: Option<GradientsParams>,
}

impl StepGradients {
    /// Takes each module group's gradients out of `grads`.
    pub fn collect(grads: &mut Gradients, modules: StepModules<'_>) -> Self {
        Self {
            model: GradientsParams::from_module(grads, modules.model),
            maps: modules
                .distillation
                .map(|(_, maps)| GradientsParams::from_module(grads, maps)),
            gates: modules.gates.map(|gates| GradientsParams::from_module(grads, gates)),
        }
    }
}
