//! The learned gate parameters of a whole model: sampling in training, inference values, and
//! one read-back of everything for snapshots and pruning.

use burn::module::Param;
use burn::prelude::*;

use super::{BlockGateValues, GateConfig, GateLayout, GateSnapshot, GateTensors, PerSite, PruningScores, SiteKind};
use crate::kernels::{self, GateDraw, GateRelaxation, PACK_PARTS, PackGroup, UnitGate};
use crate::readback::{ReadBackError, read_floats};
use crate::rng::SplitMix64;

/// The learned gate parameters of a whole model.
#[derive(Module, Debug)]
pub struct Gates {
    /// Indexed `block · 5 + site`: that site's unit logits (adaptive dropout: `beta`; L0:
    /// `log_alpha`) `[units]`, or `None` where it is not gated.
    logits: Vec<Option<Param<Tensor<1>>>>,
    /// Per block, each head's logit `[h]` (gate kinds with head gates only, else empty).
    heads: Vec<Param<Tensor<1>>>,
    /// Per block, the whole-module logits `[4]` (gate kinds with module gates only, else empty).
    modules: Vec<Param<Tensor<1>>>,
    /// L0: the Lagrange multipliers `[lambda1, lambda2]`. Not trained by the gates' optimiser:
    /// the trainer steps `lambda1` by [`GateKind::multiplier_step`] and `lambda2` is a constant
    /// (`gates::hard_concrete` says why). Checkpoints written before session 39 hold a `lambda2`
    /// learned by ascent, which a resumed run keeps.
    lambdas: Option<Param<Tensor<1>>>,
    blocks: usize,
    num_heads: usize,
    d_model: usize,
}

impl Gates {
    /// Fresh gates for `config`'s method over a model of `layout`.
    ///
    /// # Panics
    /// When the method learns no gates (the trainer only builds gates for gated methods).
    pub fn new(config: &GateConfig, layout: GateLayout, device: &Device) -> Self {
        let kind = config.gate_kind().expect("gates exist only for a gated method");
        let init = kind.initial_logit();
        let gated = |site: SiteKind| config.sites.contains(&site) && kind.gates_units_of(site);
        let logits = (0..layout.blocks)
            .flat_map(|_| SiteKind::ALL)
            .map(|site| gated(site).then(|| Param::from_tensor(Tensor::full([layout.units(site)], init, device))))
            .collect();
        let structures = kind.gates_heads_and_modules();
        let per_block = |n: usize| -> Vec<Param<Tensor<1>>> {
            if structures {
                (0..layout.blocks)
                    .map(|_| Param::from_tensor(Tensor::full([n], init, device)))
                    .collect()
            } else {
                Vec::new()
            }
        };
        Self {
            logits,
            heads: per_block(layout.num_heads),
            modules: per_block(4),
            lambdas: structures.then(|| {
                let lambda2 = config.l0.lambda2 as f32;
                Param::from_tensor(Tensor::from_floats([0.0, lambda2], device)).set_require_grad(false)
            }),
            blocks: layout.blocks,
            num_heads: layout.num_heads,
            d_model: layout.d_model,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks
    }

    /// Every gate parameter's current value, for the gate kinds' regularisers.
    pub fn tensors(&self) -> GateTensors {
        GateTensors {
            units: (0..self.blocks)
                .map(|b| std::array::from_fn(|s| self.logits[b * 5 + s].as_ref().map(|p| p.val())))
                .collect(),
            heads: self.heads.iter().map(|p| p.val()).collect(),
            modules: self.modules.iter().map(|p| p.val()).collect(),
            lambdas: self.lambdas.as_ref().map(|p| p.val()),
            device: self.device(),
        }
    }

    /// `[1, 1, h]` head values → `[1, 1, d]`: each head's value repeated over its value dimensions.
    fn heads_to_value_dims(&self, heads: Tensor<3>) -> Tensor<3> {
        let (h, d) = (self.num_heads, self.d_model);
        heads.reshape([h, 1]).expand([h, d / h]).reshape([1, 1, d])
    }

    /// Training gate values: of `[rows, 1, u]` per gated site (rows from
    /// [`GateKind::draw_rows`]), heads spread over their value dimensions, and module gates
    /// where the kind has them. Each site's logistic noise is hashed from a seed that `rng`
    /// draws ([`GateDraw`]), so every backend sees the same draws; on the fused path a unit
    /// site's gate is left to be drawn by the layer that uses it.
    ///
    /// `regularised`: `Some((step, steps))` when this pass adds the penalty (one shard of a
    /// batch does). On the fused path a penalty that pulls each unit on its own
    /// ([`GateKind::unit_pull`]) then has its gradient added by the samplers' backward kernels,
    /// and [`Gates::penalty`] is only its value.
    pub fn sample(
        &self,
        config: &GateConfig,
        batch: usize,
        rng: &mut SplitMix64,
        regularised: Option<(usize, usize)>,
    ) -> Vec<BlockGateValues> {
        let kind = config.gate_kind().expect("gates exist only for a gated method");
        let rows = kind.draw_rows(batch);
        let fused = kernels::fuses_on(&self.device());
        let relaxation = kind.relaxation();
        let units_relaxation = match regularised.and_then(|(step, steps)| kind.unit_pull(step, steps)) {
            Some((pull, target)) if fused => relaxation.with_pull(pull, target),
            _ => relaxation,
        };
        let mut draw = |logits: Tensor<1>, relaxation: GateRelaxation| {
            let draw = GateDraw::new(rng.next_u64(), rows, relaxation);
            if fused {
                return UnitGate::Drawn { logits, draw };
            }
            let units = logits.dims()[0];
            let noise = Tensor::<2>::from_data(TensorData::new(draw.noise(units), [rows, units]), &logits.device());
            UnitGate::Values(kind.sample(logits, noise).reshape([rows, 1, units]))
        };
        (0..self.blocks)
            .map(|b| {
                let mut sites: PerSite<UnitGate> =
                    std::array::from_fn(|s| self.logits[b * 5 + s].as_ref().map(|p| draw(p.val(), units_relaxation)));
                let modules = kind.gates_heads_and_modules().then(|| {
                    let heads = draw(self.heads[b].val(), relaxation).values();
                    sites[SiteKind::AttnValue.index()] = Some(UnitGate::Values(self.heads_to_value_dims(heads)));
                    draw(self.modules[b].val(), relaxation).values().reshape([4])
                });
                BlockGateValues { sites, modules }
            })
            .collect()
    }

    /// Every unit logit in one flat tensor, by block and site (cube backends only: packed six
    /// tensors a dispatch; not differentiated).
    fn packed_unit_logits(&self) -> Tensor<1> {
        let logits: Vec<Tensor<1>> = self.logits.iter().flatten().map(|p| p.val()).collect();
        end_to_end(logits, &self.device())
    }

    /// Inference gate values at `threshold` (see [`Gates::inference_values`]), after reading
    /// the gates back (a sync point on native backends).
    pub async fn deterministic(
        &self,
        config: &GateConfig,
        threshold: f64,
    ) -> Result<Vec<BlockGateValues>, ReadBackError> {
        let scores = self.snapshot().await?.pruning_scores(config);
        Ok(self.inference_values(config, &scores, threshold))
    }

    /// Inference gate values `[1, 1, u]` per site (and module gates) from scores already on the
    /// host: each unit's [`GateKind::mask_value`] at `threshold`.
    pub fn inference_values(
        &self,
        config: &GateConfig,
        scores: &PruningScores,
        threshold: f64,
    ) -> Vec<BlockGateValues> {
        let kind = config.gate_kind().expect("gates exist only for a gated method");
        let device = self.device();
        let row =
            |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device).reshape([1, v.len()]);
        scores
            .units
            .iter()
            .zip(&scores.modules)
            .map(|(sites, modules)| BlockGateValues {
                sites: std::array::from_fn(|s| {
                    sites[s].as_ref().map(|v| {
                        let kept: Vec<f32> = v.iter().map(|&p| kind.mask_value(p, threshold)).collect();
                        UnitGate::Values(row(&kept).unsqueeze())
                    })
                }),
                modules: kind.gates_heads_and_modules().then(|| row(modules).reshape([4])),
            })
            .collect()
    }

    /// The device the gates live on, from their parameters: never a default device, so gates on
    /// WebGPU are never read or scored on the CPU by mistake.
    fn device(&self) -> Device {
        self.logits
            .iter()
            .flatten()
            .chain(&self.heads)
            .chain(&self.modules)
            .chain(&self.lambdas)
            .next()
            .map(|p| p.val().device())
            // `GateConfig::validate` (run on every config a front door or checkpoint brings)
            // refuses a gated method without a gated site.
            .expect("gates of a validated config hold at least one parameter")
    }

    /// Every gate parameter in one flat tensor — unit logits by block and site, then heads,
    /// then modules — so that one read-back serves scores and retention alike.
    fn flat_parameters(&self) -> Tensor<1> {
        let parts: Vec<Tensor<1>> = self
            .logits
            .iter()
            .flatten()
            .chain(&self.heads)
            .chain(&self.modules)
            .map(|p| p.val())
            .collect();
        end_to_end(parts, &self.device())
    }

    /// The gate parameters on the host (one read-back; a sync point on native backends).
    pub async fn snapshot(&self) -> Result<GateSnapshot, ReadBackError> {
        let flat = read_floats(self.flat_parameters(), "the gates").await?;
        Ok(self.unflatten(&flat))
    }

    /// Splits [`Gates::flat_parameters`]' values back into their vectors.
    fn unflatten(&self, flat: &[f32]) -> GateSnapshot {
        let mut rest = flat;
        let mut take = |n: usize| -> Vec<f32> {
            let n = n.min(rest.len());
            let (head, tail) = rest.split_at(n);
            rest = tail;
            head.to_vec()
        };
        let units = (0..self.blocks)
            .map(|b| std::array::from_fn(|s| self.logits[b * 5 + s].as_ref().map(|p| take(p.val().dims()[0]))))
            .collect();
        let heads = self.heads.iter().map(|_| take(self.num_heads)).collect();
        let modules = self.modules.iter().map(|_| take(4)).collect();
        GateSnapshot {
            units,
            heads,
            modules,
            d_model: self.d_model,
        }
    }

    /// The regulariser, `[1]` (see [`GateKind::penalty`]). On the fused path a penalty that
    /// pulls each unit on its own is only a value to report, its gradient already added by the
    /// pass's samplers (drawn with `regularised` set, [`Gates::sample`]): `pull/2 · Σ (a − c)²`
    /// over every unit logit packed into one tensor, one reduction instead of one per site.
    pub fn penalty(&self, config: &GateConfig, layout: GateLayout, step: usize, steps: usize) -> Tensor<1> {
        let kind = config.gate_kind().expect("gates exist only for a gated method");
        match kind.unit_pull(step, steps) {
            Some((pull, target)) if kernels::fuses_on(&self.device()) => self
                .packed_unit_logits()
                .sub_scalar(target)
                .powf_scalar(2.0)
                .sum()
                .mul_scalar(pull / 2.0),
            _ => kind.penalty(&self.tensors(), layout, step, steps),
        }
    }

    /// The gates with `step` `[2]` added to their Lagrange multipliers (L0; others have none).
    pub fn with_multipliers_moved(mut self, step: Tensor<1>) -> Self {
        // A fresh leaf from the plain values: with the multipliers the result of an autodiff
        // op (tracked or not), burn refused the next step's backward ("graph tape has already
        // been consumed").
        self.lambdas = self
            .lambdas
            .map(|p| p.map(|lambdas| Tensor::from_inner(lambdas.inner() + step.inner())));
        self
    }
}

/// `parts` end to end in one tensor: on the fused path six parts a dispatch
/// (`kernels::fused_pack`), otherwise burn's `cat` (a dispatch or more a part). Not
/// differentiated.
fn end_to_end(parts: Vec<Tensor<1>>, device: &Device) -> Tensor<1> {
    if !kernels::fuses_on(device) {
        return Tensor::cat(parts, 0);
    }
    let total: usize = parts.iter().map(|t| t.dims()[0]).sum();
    let mut flat = Tensor::<1>::empty([total], device);
    let mut start = 0;
    for chunk in parts.chunks(PACK_PARTS) {
        let mut slots = [(0u32, 0u32); PACK_PARTS];
        let mut len = 0;
        for (slot, t) in slots.iter_mut().zip(chunk) {
            *slot = (len as u32, t.dims()[0] as u32);
            len += t.dims()[0];
        }
        let group = PackGroup {
            start: start as u32,
            len: len as u32,
            parts: slots,
        };
        let chunk = chunk.iter().map(|t| t.clone().into_dispatch()).collect();
        flat = kernels::fused_pack(flat, chunk, group);
        start += len;
    }
    flat
}
