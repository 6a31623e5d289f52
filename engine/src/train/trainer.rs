//! One training run's state and its optimiser step.
//!
//! Data order and augmentation are pure functions of (seed, epoch, step), so a run restored
//! from a checkpoint continues with exactly the batches it would have seen.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::store::ModuleRecord;

use super::batch::StepBatch;
use super::flat_adam::FlatAdamConfig;
use super::forward::{PendingStep, StepModules, StepPosition, forward_pass};
use super::gating::{block_masks, gate_layout};
use super::optimiser::Optimiser;
use super::readout::{Readout, StepGradients};
use super::shards::{ShardedStep, sharded_step};
use super::{LayerMaps, TrainConfig, TrainError, TrainEvent, learning_rate};
use crate::audio::FeatureStats;
use crate::data::{BatchPlan, Utterance, make_batches};
use crate::gates::Gates;
use crate::model::{BlockMasks, Conformer, ConformerConfig};
use crate::prune::CutSource;
use crate::readback::{ReadBackError, host_copy, read_floats, settled};
use crate::rng::SplitMix64;

impl TrainerState {
    /// The model alone (config, feature statistics, weights; no optimiser, gates or
    /// distillation state): what a warm start or a teacher needs, at a third of a checkpoint's
    /// size. It still loads as a checkpoint, but continuing it as a run starts every optimiser
    /// moment afresh.
    pub fn weights_only(&self) -> Self {
        Self {
            gates: Vec::new(),
            ..self.without_resume_state()
        }
    }

    /// A finished run's result without what only resuming it needs: config, statistics,
    /// weights and gates (so it still cuts, scores and teaches as the full checkpoint does),
    /// no optimiser moments or distillation maps; about a third of a checkpoint's size.
    pub fn without_resume_state(&self) -> Self {
        Self {
            optimizer: Vec::new(),
            gate_optimizer: Vec::new(),
            distill_maps: Vec::new(),
            distill_optimizer: Vec::new(),
            ..self.clone()
        }
    }
}

/// A whole-batch step between its forward pass and its update.
struct Pending {
    step: usize,
    pass: PendingStep,
    utterances: usize,
    audio_seconds: f64,
}

/// Everything needed to continue a run, in plain bytes (see `store::checkpoint`).
#[derive(Debug, Clone)]
pub struct TrainerState {
    pub config: TrainConfig,
    pub stats: FeatureStats,
    /// Optimiser steps taken.
    pub step: usize,
    pub skipped_steps: usize,
    /// Burnpack bytes of the model.
    pub model: Vec<u8>,
    /// The optimiser's state (`FlatAdam::read_bytes`; burnpack from runs written before it; empty
    /// for a weights-only export).
    pub optimizer: Vec<u8>,
    /// Burnpack bytes of the gate parameters (empty for an ungated run).
    pub gates: Vec<u8>,
    /// The gates' own optimiser's state, in the same format (empty for an ungated run).
    pub gate_optimizer: Vec<u8>,
    /// Burnpack bytes of the distillation maps and their optimiser (empty without distillation).
    pub distill_maps: Vec<u8>,
    pub distill_optimizer: Vec<u8>,
}

/// Distillation in progress: the frozen teacher (inference copy on the plain device) and the
/// learned layer maps with their optimiser.
struct Distillation {
    teacher: Conformer,
    maps: LayerMaps,
    optim: Optimiser,
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
    model: Conformer,
    optim: Optimiser,
    /// Learned gates and their optimiser (gated methods only).
    gates: Option<(Gates, Optimiser)>,
    distillation: Option<Distillation>,
    /// Saved distillation maps and optimiser bytes from a restore, used by `attach_teacher`.
    pending_maps: Option<(Vec<u8>, Vec<u8>)>,
    step: usize,
    skipped_steps: usize,
    device: Device,
    epoch: Option<EpochPlan>,
}

/// AdamW for the model and the distillation maps.
fn model_optim_config(config: &TrainConfig) -> FlatAdamConfig {
    FlatAdamConfig {
        epsilon: 1e-8,
        beta_2: 0.98,
        ..FlatAdamConfig::adamw(config.optim.weight_decay, Some(config.optim.grad_clip_norm))
    }
}

fn optimizer(config: &TrainConfig) -> Optimiser {
    Optimiser::new(model_optim_config(config))
}

/// Plain Adam for the gates: weight decay would pull logits to 0 (retention ½) instead of the
/// schedule's target.
fn gate_optim_config() -> FlatAdamConfig {
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
            device,
            epoch: None,
        }
    }

    /// A fresh run that starts from a trained model's weights instead of random ones (the
    /// lab's trained start, `prunelab train --init-from`): step 0, a fresh optimiser, fresh
    /// gates (their initial logits keep nearly every unit), and the trained model's feature
    /// statistics, since its weights expect features normalised by them. `start` is a
    /// checkpoint's state (or its weights-only copy) of a dense model with `config`'s
    /// architecture and filterbank.
    pub fn warm_start(config: TrainConfig, start: &TrainerState, device: &Device) -> Result<Self, TrainError> {
        let (mine, theirs) = (&config.model, &start.config.model);
        let same_architecture = ConformerConfig {
            dropout: mine.dropout,
            ..theirs.clone()
        } == *mine;
        if !same_architecture || theirs.block_shapes.is_some() {
            return Err(TrainError::StartMismatch(format!(
                "it is a {} model{} and this run is a {}",
                start.config.preset.name(),
                if theirs.block_shapes.is_some() { " (pruned)" } else { "" },
                config.preset.name()
            )));
        }
        if config.fbank != start.config.fbank {
            return Err(TrainError::StartMismatch(
                "its filterbank settings differ from this run's".into(),
            ));
        }
        let mut trainer = Self::new(config, start.stats.clone(), device);
        trainer.model = load_model(trainer.model, start.model.clone())?;
        Ok(trainer)
    }

    /// Continues a run from its saved state.
    pub fn restore(state: TrainerState, device: &Device) -> Result<Self, TrainError> {
        let mut trainer = Self::new(state.config, state.stats, device);
        // Model first: the optimiser state is keyed by the parameter ids the model record restores.
        trainer.model = load_model(trainer.model, state.model)?;
        if !state.optimizer.is_empty() {
            trainer.optim = Optimiser::restore(
                model_optim_config(&trainer.config),
                &state.optimizer,
                &trainer.model,
                device,
                "optimiser state does not load",
            )?;
        }
        if let Some((gates, gate_optim)) = trainer.gates.take() {
            if state.gates.is_empty() {
                return Err(TrainError::MissingGates);
            }
            let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(state.gates))
                .map_err(|e| TrainError::state("gate parameters are unreadable", e))?;
            let gates = gates
                .try_load_record(record)
                .map_err(|e| TrainError::state("gate parameters do not fit the model", e))?;
            let gate_optim = if state.gate_optimizer.is_empty() {
                gate_optim
            } else {
                Optimiser::restore(
                    gate_optim_config(),
                    &state.gate_optimizer,
                    &gates,
                    device,
                    "gate optimiser state does not load",
                )?
            };
            trainer.gates = Some((gates, gate_optim));
        }
        trainer.pending_maps = Some((state.distill_maps, state.distill_optimizer));
        trainer.step = state.step;
        trainer.skipped_steps = state.skipped_steps;
        Ok(trainer)
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

    /// Continues training with `model` (a smaller, pruned copy of this run's model) in place of
    /// the current one. The optimiser starts afresh (its moments belong to deleted units); the
    /// step, and so the learning-rate schedule and data order, carries on.
    pub async fn replace_model(&mut self, model: &Conformer) -> Result<(), TrainError> {
        let bytes = module_bytes(model.clone(), "the pruned model").await?;
        self.config.model.block_shapes = Some(model.block_shapes());
        self.model = load_model(self.config.model.init(&self.device), bytes)?;
        self.optim = optimizer(&self.config);
        Ok(())
    }

    /// Starts distilling from `teacher` (a dense checkpoint's state of the same architecture).
    /// Needed whenever `config.distill` is set, also after a restore (the teacher is not saved).
    pub fn attach_teacher(&mut self, teacher: &TrainerState) -> Result<(), TrainError> {
        let (mine, theirs) = (&self.config.model, &teacher.config.model);
        if (mine.d_model, mine.num_blocks, mine.vocab_size) != (theirs.d_model, theirs.num_blocks, theirs.vocab_size)
            || theirs.block_shapes.is_some()
        {
            return Err(TrainError::TeacherMismatch);
        }
        let plain = self.device.clone().inner();
        let model = load_model(theirs.init(&plain), teacher.model.clone())?;
        let mut maps = LayerMaps::new(mine.num_blocks, mine.d_model, &self.device);
        materialise(&maps);
        let mut optim = optimizer(&self.config);
        if let Some((map_bytes, optim_bytes)) = self.pending_maps.take()
            && !map_bytes.is_empty()
        {
            let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(map_bytes))
                .map_err(|e| TrainError::state("distillation maps are unreadable", e))?;
            maps = maps
                .try_load_record(record)
                .map_err(|e| TrainError::state("distillation maps do not fit", e))?;
            if !optim_bytes.is_empty() {
                optim = Optimiser::restore(
                    model_optim_config(&self.config),
                    &optim_bytes,
                    &maps,
                    &plain,
                    "distillation optimiser state does not load",
                )?;
            }
        }
        self.distillation = Some(Distillation {
            teacher: model.valid(),
            maps,
            optim,
        });
        Ok(())
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
        CutSource::new(
            self.inference_model(),
            self.config.model.clone(),
            gates.as_ref(),
            &self.config.prune,
            force_magnitude,
        )
        .await
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
            let mut gate_grads = gradients.gates.unwrap_or_default();
            // The Lagrange multipliers maximise the Lagrangian: flip their gradient for ascent.
            if let Some(id) = gates.lambda_id()
                && let Some(g) = gate_grads.remove::<1>(id)
            {
                gate_grads.register(id, g.neg());
            }
            let gates = gate_optim_step(gate_optim, gates, gate_grads, self.config.prune.lr);
            self.gates = Some(gates);
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

    /// The run's state as bytes. Reads every parameter back asynchronously, so it works on
    /// WebGPU too: the lab keeps such a copy on the host in case the GPU is lost.
    pub async fn read_state(&self) -> Result<TrainerState, TrainError> {
        let model = module_bytes(self.model.valid(), "the model").await?;
        let optimizer = self.optim.read_bytes("cannot serialise optimiser").await?;
        let (gates, gate_optimizer) = match &self.gates {
            Some((gates, optim)) => (
                module_bytes(gates.valid(), "the gates").await?,
                optim.read_bytes("cannot serialise gate optimiser").await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let (distill_maps, distill_optimizer) = match &self.distillation {
            Some(d) => (
                module_bytes(d.maps.valid(), "the distillation maps").await?,
                d.optim.read_bytes("cannot serialise distillation optimiser").await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        Ok(TrainerState {
            config: self.config.clone(),
            stats: self.stats.clone(),
            step: self.step,
            skipped_steps: self.skipped_steps,
            model,
            optimizer,
            gates,
            gate_optimizer,
            distill_maps,
            distill_optimizer,
        })
    }

    /// [`Trainer::read_state`], blocking (native only).
    #[cfg(not(target_family = "wasm"))]
    pub fn state(&self) -> Result<TrainerState, TrainError> {
        crate::readback::block_on(self.read_state())
    }
}

/// `module`'s parameters as burnpack bytes, read back asynchronously through a host copy
/// (serialising reads synchronously, which WebGPU cannot). `what` names it in errors.
async fn module_bytes<M: Module>(module: M, what: &'static str) -> Result<Vec<u8>, TrainError> {
    let on_host = host_copy(module, what).await?;
    let bytes = on_host
        .into_record()
        .into_bytes()
        .map_err(|e| TrainError::state("cannot serialise parameters read back", e))?;
    Ok(bytes.to_vec())
}

fn gate_optim_step(mut optim: Optimiser, gates: Gates, grads: GradientsParams, lr: f64) -> (Gates, Optimiser) {
    let gates = optim.step(lr, gates, grads);
    (gates, optim)
}

/// Draws every lazily initialised parameter of `module` now. burn initialises a parameter at
/// its first use, from the same device generator that draws dropout masks, so without this the
/// first step's masks would depend on whether anything had touched the weights before it (a
/// rehearsal, a restore).
fn materialise<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            drop(param.val());
        }
    }
    module.visit(&mut Touch);
}

/// Loads burnpack bytes into `model`, failing (not panicking) when shapes or names disagree.
pub fn load_model(model: Conformer, bytes: Vec<u8>) -> Result<Conformer, TrainError> {
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::state("model weights are unreadable", e))?;
    model
        .try_load_record(record)
        .map_err(|e| TrainError::state("model weights do not fit the model", e))
}
