//! A training run: its construction (fresh, warm-started, with a teacher) and its optimiser
//! step, top to bottom (`train_step` → `forward_step` → `finish_step` → `apply_update`). Its
//! saved state and restoring it are in `state`; the forward pass and its readout in `forward`.
//!
//! Data order and augmentation are pure functions of (seed, epoch, step), so a run restored
//! from a checkpoint continues with exactly the batches it would have seen.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::batch::StepBatch;
use super::forward::{PendingStep, Readout, StepGradients, StepModules, StepPosition, forward_pass};
use super::gating::{block_masks, gate_layout};
use super::shards::{ShardedStep, sharded_step};
use super::{LayerMaps, TrainConfig, TrainError, TrainEvent};
use crate::audio::FeatureStats;
use crate::data::{BatchPlan, Utterance, make_batches};
use crate::gates::Gates;
use crate::model::{BlockKeep, BlockMasks, Conformer, seed_hashed_dropout};
use crate::optim::{FlatAdamConfig, Optimiser, learning_rate};
use crate::prune::CutSource;
use crate::readback::{ReadBackError, read_floats, settled};
use crate::rng::SplitMix64;

/// A whole-batch step between its forward pass and its update.
struct Pending {
    step: usize,
    pass: PendingStep,
    utterances: usize,
    audio_seconds: f64,
}

/// Distillation in progress: the frozen teacher (inference copy on the plain device) and the
/// learned layer maps with their optimiser.
pub(super) struct Distillation {
    pub(super) teacher: Conformer,
    pub(super) maps: LayerMaps,
    pub(super) optim: Optimiser,
}

/// The batch plan of the epoch the run is in, and the step at which that epoch began.
#[derive(Debug, Clone)]
struct EpochPlan {
    epoch: usize,
    first_step: usize,
    plan: BatchPlan,
}

/// A training run: the model on an autodiff device, its optimiser, and its position.
pub struct Trainer {
    pub config: TrainConfig,
    pub stats: FeatureStats,
    pub(super) model: Conformer,
    pub(super) optim: Optimiser,
    /// Learned gates and their optimiser (gated methods only).
    pub(super) gates: Option<(Gates, Optimiser)>,
    pub(super) distillation: Option<Distillation>,
    /// Saved distillation maps and optimiser bytes from a restore, used by `attach_teacher`.
    pub(super) pending_maps: Option<(Vec<u8>, Vec<u8>)>,
    pub(super) step: usize,
    pub(super) skipped_steps: usize,
    /// The keep-plan (over the dense model) of the magnitude method's cut, once it has cut this
    /// run's model: with it the smaller model can be cut again and exported. Known only to the
    /// process that made the cut (checkpoints keep the smaller shapes, not the plan).
    pub(super) earlier_cut: Option<Vec<BlockKeep>>,
    pub(super) device: Device,
    epoch: Option<EpochPlan>,
}

/// AdamW for the model and the distillation maps.
pub(super) fn model_optim_config(config: &TrainConfig) -> FlatAdamConfig {
    FlatAdamConfig {
        epsilon: 1e-8,
        beta_2: 0.98,
        ..FlatAdamConfig::adamw(config.optim.weight_decay, Some(config.optim.grad_clip_norm))
    }
}

pub(super) fn optimizer(config: &TrainConfig) -> Optimiser {
    Optimiser::new(model_optim_config(config))
}

/// Plain Adam for the gates: weight decay would pull logits to 0 (retention ½) instead of the
/// schedule's target.
pub(super) fn gate_optim_config() -> FlatAdamConfig {
    FlatAdamConfig::adam()
}

/// Fresh gates for `config`'s model, if its method learns any.
fn new_gates(config: &TrainConfig, device: &Device) -> Option<(Gates, Optimiser)> {
    let m = &config.model;
    config.prune.gate_kind().is_some().then(|| {
        let gates = Gates::new(&config.prune, gate_layout(m), device);
        (gates, Optimiser::new(gate_optim_config()))
    })
}

impl Trainer {
    /// A fresh run. `device` is a plain device; training happens on its autodiff twin.
    pub fn new(config: TrainConfig, stats: FeatureStats, device: &Device) -> Self {
        device.seed(config.seed);
        let device = device.clone().autodiff();
        let model = config.model.init(&device);
        let optim = optimizer(&config);
        let gates = new_gates(&config, &device);
        materialise(&model);
        if let Some((gates, _)) = &gates {
            materialise(gates);
        }
        Self {
            config,
            stats,
            model,
            optim,
            gates,
            distillation: None,
            pending_maps: None,
            step: 0,
            skipped_steps: 0,
            earlier_cut: None,
            device,
            epoch: None,
        }
    }

    pub fn step(&self) -> usize {
        self.step
    }

    pub fn skipped_steps(&self) -> usize {
        self.skipped_steps
    }

    pub fn is_finished(&self) -> bool {
        self.step >= self.config.steps
    }

    /// An inference copy of the current model (no autodiff, dropout off).
    pub fn inference_model(&self) -> Conformer {
        self.model.valid()
    }

    /// An inference copy of the gates (gated runs only).
    pub fn inference_gates(&self) -> Option<Gates> {
        self.gates.as_ref().map(|(g, _)| g.valid())
    }

    /// The model's inference masks at `threshold` (empty for an ungated run). Reads the gates
    /// back (a sync point on native backends).
    pub async fn inference_masks(&self, threshold: f64) -> Result<Vec<BlockMasks>, ReadBackError> {
        let Some(gates) = self.inference_gates() else {
            return Ok(Vec::new());
        };
        Ok(block_masks(gates.deterministic(&self.config.prune, threshold).await?))
    }

    /// The current model with its units' scores, ready to cut (one read-back; see
    /// [`CutSource`]). `force_magnitude` scores a gated run by weight norms instead.
    pub async fn cut_source(&self, force_magnitude: bool) -> Result<CutSource, ReadBackError> {
        let gates = self.inference_gates();
        let source = CutSource::new(
            self.inference_model(),
            self.config.model.clone(),
            gates.as_ref(),
            &self.config.prune,
            force_magnitude,
        )
        .await?;
        Ok(match &self.earlier_cut {
            Some(plan) => source.within_earlier_cut(plan.clone()),
            None => source,
        })
    }

    /// The utterance indices of the batch for the current step. Epochs are consecutive passes,
    /// each over its own shuffled plan, so the batch for a step depends only on the seed.
    fn next_batch(&mut self, train: &[Utterance]) -> Vec<usize> {
        let mut current = match self.epoch.take() {
            Some(e) => e,
            None => self.epoch_plan(0, 0, train),
        };
        // Walk forward to the epoch holding this step (several epochs after a restore).
        while self.step >= current.first_step + current.plan.batches.len() {
            let first_step = current.first_step + current.plan.batches.len();
            current = self.epoch_plan(current.epoch + 1, first_step, train);
        }
        let batch = current.plan.batches[self.step - current.first_step].clone();
        self.epoch = Some(current);
        batch
    }

    fn epoch_plan(&self, epoch: usize, first_step: usize, train: &[Utterance]) -> EpochPlan {
        let mut rng = SplitMix64::derive(self.config.seed, &format!("epoch-{epoch}"));
        EpochPlan {
            epoch,
            first_step,
            plan: make_batches(train, self.config.max_batch_frames, self.config.shape_buckets, &mut rng),
        }
    }

    /// One optimiser step on `batch`. Reads the loss back (a sync point on native backends)
    /// to skip a step whose loss is not finite. An empty given batch (every item of it
    /// unreadable) counts as a skipped step, so the step still maps to the same batch on a
    /// resumed run. A failed read-back stops the step with the model as it was.
    pub async fn train_step(&mut self, batch: StepBatch<'_>) -> Result<TrainEvent, TrainError> {
        let planned: Vec<&Utterance>;
        let utterances: &[&Utterance] = match batch {
            StepBatch::Planned(train) => {
                if train.is_empty() {
                    return Err(TrainError::NoTrainingData);
                }
                planned = self.next_batch(train).iter().map(|&i| &train[i]).collect();
                &planned
            }
            StepBatch::Given(utterances) => utterances,
        };
        if utterances.is_empty() {
            self.skipped_steps += 1;
            self.step += 1;
            return Ok(TrainEvent::SkippedStep { step: self.step - 1 });
        }
        // The browser has no threads to shard over.
        if self.config.shards > 1 && cfg!(not(target_family = "wasm")) {
            return Ok(self.sharded_step(utterances)?);
        }
        let pending = self.forward_step(utterances);
        match read_floats(pending.pass.readout.clone(), "the loss").await {
            Ok(values) => Ok(self.finish_step(pending, &values)),
            Err(e) => {
                self.model.restore_running_stats(pending.pass.running_stats);
                Err(e.into())
            }
        }
    }

    /// Forward and backward on `utterances` with nothing updated: a dress rehearsal of the
    /// largest batch a run will meet, so that running out of memory happens in its first minute
    /// rather than hours in. The step counter, weights, optimiser and BatchNorm statistics are
    /// as they were; the gradients are dropped.
    pub fn rehearse(&mut self, utterances: &[&Utterance]) {
        if utterances.is_empty() {
            return;
        }
        let pending = self.forward_step(utterances);
        drop(pending.pass.objective.backward());
        let _ = self.device.clone().inner().sync(); // sync point: make queued device work happen
        self.model.restore_running_stats(pending.pass.running_stats);
    }

    /// The first half of a step on the whole batch: `utterances` through the model, and every
    /// loss term.
    fn forward_step(&mut self, utterances: &[&Utterance]) -> Pending {
        // Dropout draws come from the backend's generator: reseeding it from the step makes a
        // run resumed at any step draw exactly what the uninterrupted run drew.
        let dropout_seed = SplitMix64::derive(self.config.seed, &format!("dropout-{}", self.step)).next_u64();
        self.device.clone().inner().seed(dropout_seed);
        // The hashed masks (module outputs, attention weights) take seeds from a stream of their own.
        seed_hashed_dropout(SplitMix64::derive(self.config.seed, &format!("hashed-dropout-{}", self.step)).next_u64());
        let position = StepPosition {
            step: self.step,
            shard: None,
        };
        let pass = forward_pass(
            self.modules(),
            &self.config,
            &self.stats,
            &self.device,
            position,
            utterances,
            1.0,
        );
        Pending {
            step: self.step,
            pass,
            utterances: utterances.len(),
            audio_seconds: utterances.iter().map(|u| u.duration_seconds).sum(),
        }
    }

    /// The modules a forward pass reads, borrowed from the trainer.
    fn modules(&self) -> StepModules<'_> {
        StepModules {
            model: &self.model,
            gates: self.gates.as_ref().map(|(g, _)| g),
            distillation: self.distillation.as_ref().map(|d| (&d.teacher, &d.maps)),
        }
    }

    /// The second half of a whole-batch step: skip it when the loss read back is not finite,
    /// otherwise back-propagate and update the model, the gates and the distillation maps.
    fn finish_step(&mut self, pending: Pending, values: &[f32]) -> TrainEvent {
        let Pending {
            step,
            pass,
            utterances,
            audio_seconds,
        } = pending;
        let readout = Readout::from_values(values);
        self.step += 1;
        if !readout.is_finite() {
            // The forward pass moved BatchNorm's running statistics towards this batch's (NaN or
            // inf) ones; without this the skipped step would still poison inference.
            self.model.restore_running_stats(pass.running_stats);
            self.skipped_steps += 1;
            return TrainEvent::SkippedStep { step };
        }
        let mut grads = pass.objective.backward();
        let gradients = StepGradients::collect(&mut grads, self.modules());
        let lr = self.apply_update(step, gradients);
        self.step_event(step, lr, &readout, utterances, audio_seconds)
    }

    /// One step with the batch split over `config.shards` threads (see `shards`).
    fn sharded_step(&mut self, utterances: &[&Utterance]) -> Result<TrainEvent, ReadBackError> {
        let step = self.step;
        let outcome = sharded_step(
            self.modules(),
            &self.config,
            &self.stats,
            &self.device,
            step,
            utterances,
        )?;
        self.step += 1;
        Ok(match outcome {
            ShardedStep::Skipped => {
                self.skipped_steps += 1;
                TrainEvent::SkippedStep { step }
            }
            ShardedStep::Done {
                readout,
                gradients,
                running_stats,
            } => {
                self.model.restore_running_stats(running_stats);
                let lr = self.apply_update(step, gradients);
                let audio_seconds = utterances.iter().map(|u| u.duration_seconds).sum();
                self.step_event(step, lr, &readout, utterances.len(), audio_seconds)
            }
        })
    }

    /// The optimiser steps of step `step` for the model, the distillation maps and the gates;
    /// returns the learning rate they used.
    fn apply_update(&mut self, step: usize, gradients: StepGradients) -> f64 {
        let lr = learning_rate(&self.config.optim, step, self.config.steps);
        if let Some(mut d) = self.distillation.take() {
            if let Some(map_grads) = gradients.maps {
                d.maps = d.optim.step(lr, d.maps, map_grads);
            }
            self.distillation = Some(d);
        }
        if let Some((gates, gate_optim)) = self.gates.take() {
            // The multipliers' step is taken from the gate values this step trained with.
            let multiplier_step = self.config.prune.gate_kind().and_then(|kind| {
                kind.multiplier_step(
                    &gates.tensors().detached(),
                    gate_layout(&self.config.model),
                    step,
                    self.config.steps,
                )
            });
            let gate_grads = gradients.gates.unwrap_or_default();
            let (gates, gate_optim) = gate_optim_step(gate_optim, gates, gate_grads, self.config.prune.lr);
            let gates = match multiplier_step {
                Some(multiplier_step) => gates.with_multipliers_moved(multiplier_step),
                None => gates,
            };
            self.gates = Some((gates, gate_optim));
        }
        self.model = self.optim.step(lr, self.model.clone(), gradients.model);
        lr
    }

    fn step_event(&self, step: usize, lr: f64, readout: &Readout, utterances: usize, audio_seconds: f64) -> TrainEvent {
        TrainEvent::Step {
            step,
            loss: readout.loss,
            penalty: readout.penalty,
            expected_sparsity: self
                .config
                .prune
                .gate_kind()
                .is_some_and(|k| k.aims_at_sparsity())
                .then_some(readout.expected_sparsity),
            distill: self.config.distill.is_some().then_some(readout.distill),
            lr,
            utterances,
            audio_seconds,
        }
    }

    /// Waits until the last step's backward pass and update have run on the device
    /// ([`Trainer::train_step`] returns once the loss is read, with them still queued).
    pub async fn settle(&self) -> Result<(), ReadBackError> {
        settled(&self.model.valid(), "the last step's update").await
    }
}

fn gate_optim_step(mut optim: Optimiser, gates: Gates, grads: GradientsParams, lr: f64) -> (Gates, Optimiser) {
    let gates = optim.step(lr, gates, grads);
    (gates, optim)
}

/// Draws every lazily initialised parameter of `module` now. burn initialises a parameter at
/// its first use, from the same device generator that draws dropout masks, so without this the
/// first step's masks would depend on whether anything had touched the weights before it (a
/// rehearsal, a restore).
pub(super) fn materialise<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            drop(param.val());
        }
    }
    module.visit(&mut Touch);
}
