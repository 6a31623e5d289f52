//! A run's saved state: `TrainerState` (everything needed to continue a run, in plain bytes);
//! the trainers made from one (restored, warm-started, taught by a teacher) and reading one back;
//! and the one loader every saved module record (model, gates, distillation maps) goes through.

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;

use super::trainer::{Distillation, Trainer, gate_optim_config, materialise, model_optim_config, optimizer};
use super::{LayerMaps, TrainConfig, TrainError};
use crate::audio::FeatureStats;
use crate::gates::Gates;
use crate::model::{BlockKeep, Conformer, ConformerConfig};
use crate::optim::{FlatAdamConfig, Optimiser};
use crate::prune::Pruned;
use crate::readback::host_copy;

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
    /// The plan the magnitude method cut the model by (the dense units each block kept), so
    /// that a later cut, of a resumed run too, plans within it (`None` before a cut, and in
    /// checkpoints written before session 40, whose cut models can be cut no further).
    pub earlier_cut: Option<Vec<BlockKeep>>,
}

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

/// A kind of module record, named in the errors of loading one.
#[derive(Debug, Clone, Copy)]
enum Record {
    Model,
    Gates,
    DistillMaps,
}

impl Record {
    fn unreadable(self) -> &'static str {
        match self {
            Self::Model => "model weights are unreadable",
            Self::Gates => "gate parameters are unreadable",
            Self::DistillMaps => "distillation maps are unreadable",
        }
    }

    fn non_finite(self) -> &'static str {
        match self {
            Self::Model => "model weights are not all finite numbers",
            Self::Gates => "gate parameters are not all finite numbers",
            Self::DistillMaps => "distillation maps are not all finite numbers",
        }
    }

    fn misfit(self) -> &'static str {
        match self {
            Self::Model => "model weights do not fit the model",
            Self::Gates => "gate parameters do not fit the model",
            Self::DistillMaps => "distillation maps do not fit",
        }
    }
}

/// Loads burnpack `bytes` into `module`, failing (not panicking) when they are damaged, their
/// shapes or names disagree, or a value is NaN or infinite (such weights score every utterance
/// as garbage and cut every unit, yet would load and run without a word).
fn load_record<M: Module>(module: M, bytes: Vec<u8>, kind: Record) -> Result<M, TrainError> {
    if let Some(path) = first_non_finite(&bytes).map_err(|e| TrainError::state(kind.unreadable(), e))? {
        return Err(TrainError::State {
            what: kind.non_finite(),
            detail: format!("{path} holds NaN or infinite values"),
        });
    }
    let record = ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes))
        .map_err(|e| TrainError::state(kind.unreadable(), e))?;
    module
        .try_load_record(record)
        .map_err(|e| TrainError::state(kind.misfit(), e))
}

/// The path of the first float tensor in burnpack `bytes` with a NaN or an infinite value.
fn first_non_finite(bytes: &[u8]) -> Result<Option<String>, burn_pack::Error> {
    let tensors = burn_pack::Reader::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))?.into_tensors()?;
    for tensor in tensors {
        let (path, dtype, _, _, data) = tensor.into_parts()?;
        let finite = match dtype {
            burn::tensor::DType::F32 => data
                .chunks_exact(4)
                .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
            burn::tensor::DType::F64 => data
                .chunks_exact(8)
                .all(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])).is_finite()),
            // Prunelab writes f32; other float widths are left to their own checks downstream.
            _ => true,
        };
        if !finite {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Loads burnpack bytes into `model`, failing (not panicking) when shapes or names disagree.
pub fn load_model(model: Conformer, bytes: Vec<u8>) -> Result<Conformer, TrainError> {
    load_record(model, bytes, Record::Model)
}

/// Loads burnpack bytes into `gates` (made for the run's config), failing (not panicking) when
/// they are damaged or do not fit.
pub fn load_gates(gates: Gates, bytes: Vec<u8>) -> Result<Gates, TrainError> {
    load_record(gates, bytes, Record::Gates)
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

/// `optimiser`'s state as bytes; `what` names it in errors.
async fn optimiser_bytes(optimiser: &Optimiser, what: &'static str) -> Result<Vec<u8>, TrainError> {
    optimiser
        .read_bytes()
        .await
        .map_err(|source| TrainError::Optimiser { what, source })
}

/// The optimiser restored from `bytes` for `module`; `what` names it in errors.
fn restore_optimiser<M: Module>(
    config: FlatAdamConfig,
    bytes: &[u8],
    module: &M,
    device: &Device,
    what: &'static str,
) -> Result<Optimiser, TrainError> {
    Optimiser::restore(config, bytes, module, device).map_err(|source| TrainError::Optimiser { what, source })
}

impl Trainer {
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

    /// Continues training with `pruned` (a smaller copy of this run's dense model, and the plan
    /// that made it) in place of the current one. The optimiser starts afresh (its moments
    /// belong to deleted units); the step, and so the learning-rate schedule and data order,
    /// carries on.
    pub async fn replace_model(&mut self, pruned: &Pruned) -> Result<(), TrainError> {
        let model = &pruned.model;
        let bytes = module_bytes(model.clone(), "the pruned model").await?;
        self.config.model.block_shapes = Some(model.block_shapes());
        self.model = load_model(self.config.model.init(&self.device), bytes)?;
        self.optim = optimizer(&self.config);
        self.earlier_cut = (pruned.keep.len() == self.config.model.num_blocks).then(|| pruned.keep.clone());
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
            maps = load_record(maps, map_bytes, Record::DistillMaps)?;
            if !optim_bytes.is_empty() {
                let config = model_optim_config(&self.config);
                let what = "distillation optimiser state does not load";
                optim = restore_optimiser(config, &optim_bytes, &maps, &plain, what)?;
            }
        }
        self.distillation = Some(Distillation {
            teacher: model.valid(),
            maps,
            optim,
        });
        Ok(())
    }

    /// Continues a run from its saved state.
    pub fn restore(state: TrainerState, device: &Device) -> Result<Self, TrainError> {
        let mut trainer = Self::new(state.config, state.stats, device);
        // Model first: the optimiser state is keyed by the parameter ids the model record restores.
        trainer.model = load_model(trainer.model, state.model)?;
        if !state.optimizer.is_empty() {
            let config = model_optim_config(&trainer.config);
            trainer.optim = restore_optimiser(
                config,
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
            let gates = load_gates(gates, state.gates)?;
            let gate_optim = if state.gate_optimizer.is_empty() {
                gate_optim
            } else {
                let config = gate_optim_config();
                restore_optimiser(
                    config,
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
        trainer.earlier_cut = state.earlier_cut;
        Ok(trainer)
    }

    /// The run's state as bytes. Reads every parameter back asynchronously, so it works on
    /// WebGPU too: the lab keeps such a copy on the host in case the GPU is lost.
    pub async fn read_state(&self) -> Result<TrainerState, TrainError> {
        let model = module_bytes(self.model.valid(), "the model").await?;
        let optimizer = optimiser_bytes(&self.optim, "cannot serialise optimiser").await?;
        let (gates, gate_optimizer) = match &self.gates {
            Some((gates, optim)) => (
                module_bytes(gates.valid(), "the gates").await?,
                optimiser_bytes(optim, "cannot serialise gate optimiser").await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        let (distill_maps, distill_optimizer) = match &self.distillation {
            Some(d) => (
                module_bytes(d.maps.valid(), "the distillation maps").await?,
                optimiser_bytes(&d.optim, "cannot serialise distillation optimiser").await?,
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
            earlier_cut: self.earlier_cut.clone(),
        })
    }

    /// [`Trainer::read_state`], blocking (native only).
    #[cfg(not(target_family = "wasm"))]
    pub fn state(&self) -> Result<TrainerState, TrainError> {
        crate::readback::block_on(self.read_state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use burn::module::Param;

    #[test]
    fn weights_holding_nan_or_infinity_are_refused_by_tensor_name() {
        let device = Device::flex();
        let config = ConformerConfig {
            num_blocks: 1,
            d_model: 16,
            d_ff: 8,
            subsampling_channels: 2,
            ..TrainConfig::for_preset(Preset::Tiny, 29).model
        };
        let bytes = |model: &Conformer| model.clone().into_record().into_bytes().unwrap().to_vec();
        let mut model = config.init(&device);
        assert!(load_model(config.init(&device), bytes(&model)).is_ok());
        for bad in [f32::NAN, f32::INFINITY] {
            let shape = model.head.weight.shape();
            model.head.weight = Param::from_tensor(Tensor::full(shape, bad, &device));
            let err = load_model(config.init(&device), bytes(&model)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "model weights are not all finite numbers: head.weight holds NaN or infinite values"
            );
        }
    }
}
