//! Pruning gates: which unit vectors are gated, how their masks are drawn in training, what
//! they are at inference, and the penalty that pushes them towards zero.
//!
//! Gates know sites and unit counts, never model internals: they hand out one mask per site and
//! the training code passes those into the model's forward.

mod adaptive_dropout;
mod hard_concrete;
mod site;

pub use adaptive_dropout::{AdaptiveDropoutConfig, retention_of};
pub use hard_concrete::HardConcreteConfig;
pub use site::{SiteKind, params_per_unit, site_units};

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::readback::read_async;
use crate::rng::SplitMix64;

/// How a run learns (or picks) what to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Dense training, no gates.
    None,
    /// Learned per-unit retention with Gumbel-sigmoid masks.
    AdaptiveDropout,
    /// Hard-concrete masks on FFN units, conv channels, heads and whole modules, driven to a
    /// target sparsity by a Lagrangian.
    L0,
    /// Dense training; units are ranked by weight norms when pruning.
    Magnitude,
}

impl Method {
    pub const ALL: [Method; 4] = [Method::None, Method::AdaptiveDropout, Method::L0, Method::Magnitude];

    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::AdaptiveDropout => "adaptive-dropout",
            Method::L0 => "l0",
            Method::Magnitude => "magnitude",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether training carries learned gates.
    pub fn is_gated(self) -> bool {
        matches!(self, Method::AdaptiveDropout | Method::L0)
    }
}

/// Every pruning knob, saved with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    pub method: Method,
    /// The gated sites (every block gets each of them).
    pub sites: Vec<SiteKind>,
    pub adaptive_dropout: AdaptiveDropoutConfig,
    #[serde(default)]
    pub l0: HardConcreteConfig,
    /// Default retention threshold: a unit is kept iff its score is at least this. (L0 scores
    /// are deterministic gate values, 0 for a removed unit: any positive threshold keeps the rest.)
    pub threshold: f64,
    /// Learning rate of the gate parameters' own optimiser (Adam, no weight decay).
    pub lr: f64,
    /// Record every unit's retention every this many steps (the trace).
    pub snapshot_every: usize,
    /// Magnitude method: prune to this many parameters (a fraction of the dense model when
    /// below 1) during training, then fine-tune the smaller model (`None`: train dense only).
    #[serde(default)]
    pub magnitude_budget: Option<f64>,
    /// Magnitude method: the fraction of the run after which it prunes (the rest fine-tunes).
    #[serde(default = "default_prune_at")]
    pub magnitude_prune_at: f64,
}

fn default_prune_at() -> f64 {
    0.75
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            method: Method::None,
            sites: SiteKind::ALL.to_vec(),
            adaptive_dropout: AdaptiveDropoutConfig::default(),
            l0: HardConcreteConfig::default(),
            threshold: 0.5,
            lr: 2e-2,
            snapshot_every: 50,
            magnitude_budget: None,
            magnitude_prune_at: default_prune_at(),
        }
    }
}

impl GateConfig {
    pub fn validate(&self) -> Result<(), String> {
        let ad = &self.adaptive_dropout;
        let checks = [
            (
                (0.0..=1.0).contains(&self.threshold),
                format!("threshold {} must be in [0, 1]", self.threshold),
            ),
            (
                self.lr > 0.0 && self.lr < 10.0,
                format!("gate lr {} must be in (0, 10)", self.lr),
            ),
            (
                ad.temperature > 0.0,
                format!("temperature {} must be positive", ad.temperature),
            ),
            (
                ad.strength >= 0.0 && ad.strength.is_finite(),
                format!("strength {} must be a finite number ≥ 0", ad.strength),
            ),
            (
                [ad.initial_logit, ad.target_start, ad.target_end]
                    .iter()
                    .all(|v| v.is_finite() && v.abs() <= 20.0),
                format!(
                    "initial logit {}, target start {} and target end {} must be within ±20",
                    ad.initial_logit, ad.target_start, ad.target_end
                ),
            ),
            (
                ad.ramp_fraction > 0.0 && ad.ramp_fraction <= 1.0,
                format!("target ramp fraction {} must be in (0, 1]", ad.ramp_fraction),
            ),
            (
                ad.strength_fade_from >= 0.0 && ad.strength_fade_from <= 1.0,
                format!("strength fade start {} must be in [0, 1]", ad.strength_fade_from),
            ),
            (
                !self.method.is_gated() || !self.sites.is_empty(),
                "a gated method needs at least one site".to_string(),
            ),
            (
                (0.0..1.0).contains(&self.l0.target_sparsity),
                format!("target sparsity {} must be in [0, 1)", self.l0.target_sparsity),
            ),
            (
                self.l0.ramp_fraction > 0.0 && self.l0.ramp_fraction <= 1.0,
                format!("ramp fraction {} must be in (0, 1]", self.l0.ramp_fraction),
            ),
            (
                (0.0..1.0).contains(&self.magnitude_prune_at),
                format!("magnitude_prune_at {} must be in [0, 1)", self.magnitude_prune_at),
            ),
            (
                self.magnitude_budget.is_none_or(|b| b > 0.0 && b.is_finite()),
                "magnitude budget must be a positive number".to_string(),
            ),
        ];
        checks
            .into_iter()
            .find(|(ok, _)| !ok)
            .map_or(Ok(()), |(_, message)| Err(message))
    }
}

/// One value per site kind of a block (`None` where the site is not gated).
pub type PerSite<T> = [Option<T>; 5];

/// The sizes gates need: how many units each site has and what each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLayout {
    pub blocks: usize,
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub conv_kernel: usize,
}

impl GateLayout {
    fn units(&self, kind: SiteKind) -> usize {
        site_units(kind, self.d_model, self.d_ff)
    }

    /// Parameters of one attention head: its query/key and value/output slices.
    fn head_params(&self) -> usize {
        let k = self.d_model / self.num_heads;
        k * (params_per_unit(SiteKind::AttnQuery, self.d_model, self.conv_kernel)
            + params_per_unit(SiteKind::AttnValue, self.d_model, self.conv_kernel))
    }

    /// Parameters the L0 masks can remove in one block.
    fn prunable_per_block(&self) -> usize {
        let ppu = |k: SiteKind| params_per_unit(k, self.d_model, self.conv_kernel);
        2 * self.d_ff * ppu(SiteKind::Ffn1Hidden)
            + self.num_heads * self.head_params()
            + self.d_model * ppu(SiteKind::ConvInput)
    }
}

/// One block's gate values for a forward pass: unit masks `[b or 1, units]` per site and, for
/// L0, the whole-module gates `[4]` (FFN1, attention, conv, FFN2).
#[derive(Debug, Clone, Default)]
pub struct BlockGateValues {
    pub sites: PerSite<Tensor<2>>,
    pub modules: Option<Tensor<1>>,
}

/// Host copies of what pruning needs from gates: per block, per site, one score per unit that
/// is also its inference scale; and the whole-module gate values (1 where there are none).
#[derive(Debug, Clone, PartialEq)]
pub struct PruningScores {
    pub units: Vec<PerSite<Vec<f32>>>,
    pub modules: Vec<[f32; 4]>,
}

/// The gate parameters of a model, on the host: unit logits per block and site (adaptive
/// dropout: `beta`; L0: `log_alpha`), and for L0 each block's head and module `log_alpha`.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSnapshot {
    units: Vec<PerSite<Vec<f32>>>,
    heads: Vec<Vec<f32>>,
    modules: Vec<Vec<f32>>,
    is_l0: bool,
    d_model: usize,
}

impl GateSnapshot {
    /// Each head's value spread over its value dimensions (`d_model / heads` each).
    fn heads_on_value_dims(&self, heads: &[f32]) -> Vec<f32> {
        let k = self.d_model / heads.len().max(1);
        heads.iter().flat_map(|&z| std::iter::repeat_n(z, k)).collect()
    }

    /// Retention probability of every unit: adaptive dropout `sigmoid(beta)`; L0 `P(z ≠ 0)`
    /// of the unit's own mask, with each head's on its value dimensions.
    pub fn retention(&self, config: &GateConfig) -> Vec<PerSite<Vec<f32>>> {
        let p = |a: &f32| -> f32 {
            if self.is_l0 {
                config.l0.prob_nonzero_of(*a)
            } else {
                adaptive_dropout::retention_of(*a)
            }
        };
        let mut out: Vec<PerSite<Vec<f32>>> = self
            .units
            .iter()
            .map(|sites| sites.clone().map(|s| s.map(|v| v.iter().map(p).collect())))
            .collect();
        for (sites, heads) in out.iter_mut().zip(&self.heads) {
            let heads: Vec<f32> = heads.iter().map(p).collect();
            sites[SiteKind::AttnValue.index()] = Some(self.heads_on_value_dims(&heads));
        }
        out
    }

    /// What pruning needs: adaptive dropout's retention with no module gates; L0's
    /// deterministic gate values (heads spread over their value dimensions) and module gate values.
    pub fn pruning_scores(&self, config: &GateConfig) -> PruningScores {
        if !self.is_l0 {
            return PruningScores {
                units: self.retention(config),
                modules: vec![[1.0; 4]; self.units.len()],
            };
        }
        let hc = &config.l0;
        let mut units: Vec<PerSite<Vec<f32>>> = self
            .units
            .iter()
            .map(|sites| sites.clone().map(|s| s.map(|v| hc.deterministic(&v))))
            .collect();
        let mut modules = Vec::with_capacity(self.units.len());
        for ((sites, heads), module) in units.iter_mut().zip(&self.heads).zip(&self.modules) {
            sites[SiteKind::AttnValue.index()] = Some(self.heads_on_value_dims(&hc.deterministic(heads)));
            let m = hc.deterministic(module);
            modules.push([m[0], m[1], m[2], m[3]]);
        }
        PruningScores { units, modules }
    }
}

/// Unit sites that carry their own L0 masks (attention is masked per head instead).
const L0_UNIT_SITES: [SiteKind; 3] = [SiteKind::Ffn1Hidden, SiteKind::ConvInput, SiteKind::Ffn2Hidden];

/// The learned gate parameters of a whole model.
#[derive(Module, Debug)]
pub struct Gates {
    /// Indexed `block · 5 + site`: that site's unit logits (adaptive dropout: `beta`; L0:
    /// `log_alpha`) `[units]`, or `None` where it is not gated.
    logits: Vec<Option<Param<Tensor<1>>>>,
    /// L0: per block, each head's `log_alpha` `[h]` (empty for adaptive dropout).
    heads: Vec<Param<Tensor<1>>>,
    /// L0: per block, the whole-module `log_alpha` `[4]` (empty for adaptive dropout).
    modules: Vec<Param<Tensor<1>>>,
    /// L0: the Lagrange multipliers `[lambda1, lambda2]`, updated by gradient ascent.
    lambdas: Option<Param<Tensor<1>>>,
    blocks: usize,
    is_l0: bool,
    num_heads: usize,
    d_model: usize,
}

impl Gates {
    /// Fresh gates for `config.method` over a model of `layout`.
    pub fn new(config: &GateConfig, layout: GateLayout, device: &Device) -> Self {
        let is_l0 = config.method == Method::L0;
        let init = if is_l0 {
            config.l0.initial_log_alpha
        } else {
            config.adaptive_dropout.initial_logit
        };
        let gated = |kind: SiteKind| config.sites.contains(&kind) && (!is_l0 || L0_UNIT_SITES.contains(&kind));
        let logits = (0..layout.blocks)
            .flat_map(|_| SiteKind::ALL)
            .map(|kind| gated(kind).then(|| Param::from_tensor(Tensor::full([layout.units(kind)], init, device))))
            .collect();
        let per_block = |n: usize| -> Vec<Param<Tensor<1>>> {
            if is_l0 {
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
            lambdas: is_l0.then(|| Param::from_tensor(Tensor::zeros([2], device))),
            blocks: layout.blocks,
            is_l0,
            num_heads: layout.num_heads,
            d_model: layout.d_model,
        }
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks
    }

    /// `[1, h]` head values → `[1, d]`: each head's value repeated over its value dimensions.
    fn heads_to_value_dims(&self, heads: Tensor<2>) -> Tensor<2> {
        let (h, d) = (self.num_heads, self.d_model);
        heads.reshape([h, 1]).expand([h, d / h]).reshape([1, d])
    }

    /// Training gate values. Adaptive dropout: one Gumbel-sigmoid draw per utterance, `[b, u]`.
    /// L0: one hard-concrete draw per batch, `[1, u]`, heads spread over their value dimensions,
    /// and module gates. The logistic noise comes from `rng` on the host, so every backend sees
    /// the same draws.
    pub fn sample(&self, config: &GateConfig, batch: usize, rng: &mut SplitMix64) -> Vec<BlockGateValues> {
        let rows = if self.is_l0 { 1 } else { batch };
        let mut noise = |n: usize, device: &Device| logistic_noise(rows, n, rng, device);
        (0..self.blocks)
            .map(|b| {
                let mut sites: PerSite<Tensor<2>> = std::array::from_fn(|s| {
                    self.logits[b * 5 + s].as_ref().map(|p| {
                        let logits = p.val();
                        let [u] = logits.dims();
                        let n = noise(u, &logits.device());
                        if self.is_l0 {
                            config.l0.sample(logits, n)
                        } else {
                            config.adaptive_dropout.sample(logits, n)
                        }
                    })
                });
                let modules = self.is_l0.then(|| {
                    let heads = self.heads[b].val();
                    let n = noise(self.num_heads, &heads.device());
                    let z = config.l0.sample(heads, n);
                    sites[SiteKind::AttnValue.index()] = Some(self.heads_to_value_dims(z));
                    let modules = self.modules[b].val();
                    let n = noise(4, &modules.device());
                    config.l0.sample(modules, n).reshape([4])
                });
                BlockGateValues { sites, modules }
            })
            .collect()
    }

    /// Inference gate values `[1, u]` per site (and module gates): adaptive dropout keeps the
    /// retention where it reaches `threshold` and zeroes the rest; L0 uses its deterministic
    /// rule (see [`HardConcreteConfig::deterministic`]) and ignores `threshold`.
    /// Reads the gate parameters back (a sync point; see [`Gates::snapshot_async`]).
    pub fn deterministic(&self, config: &GateConfig, threshold: f64) -> Vec<BlockGateValues> {
        self.inference_values(&self.snapshot().pruning_scores(config), threshold)
    }

    /// [`Gates::deterministic`] from scores already on the host (no read-back).
    pub fn inference_values(&self, scores: &PruningScores, threshold: f64) -> Vec<BlockGateValues> {
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
                        let kept: Vec<f32> = if self.is_l0 {
                            v.clone()
                        } else {
                            v.iter()
                                .map(|&p| if f64::from(p) >= threshold { p } else { 0.0 })
                                .collect()
                        };
                        row(&kept)
                    })
                }),
                modules: self.is_l0.then(|| row(modules).reshape([4])),
            })
            .collect()
    }

    fn device(&self) -> Device {
        self.logits
            .iter()
            .flatten()
            .chain(&self.heads)
            .next()
            .map(|p| p.val().device())
            .unwrap_or_default()
    }

    /// What pruning needs, on the host (a sync point); see [`GateSnapshot::pruning_scores`].
    pub fn pruning_scores(&self, config: &GateConfig) -> PruningScores {
        self.snapshot().pruning_scores(config)
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
        Tensor::cat(parts, 0)
    }

    /// The gate parameters on the host. Reads back synchronously (native backends only).
    pub fn snapshot(&self) -> GateSnapshot {
        let flat: Vec<f32> = self.flat_parameters().try_into_vec_as().unwrap_or_default(); // sync point
        self.unflatten(&flat)
    }

    /// The gate parameters on the host, read back asynchronously (works on WebGPU).
    pub async fn snapshot_async(&self) -> Result<GateSnapshot, String> {
        let flat = read_async(self.flat_parameters(), "the gates").await?;
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
            is_l0: self.is_l0,
            d_model: self.d_model,
        }
    }

    /// The regulariser, `[1]`: adaptive dropout's pull towards `c(step)`, or L0's Lagrangian
    /// on the expected sparsity (see [`Gates::expected_sparsity`]).
    pub fn penalty(&self, config: &GateConfig, layout: GateLayout, step: usize, steps: usize) -> Tensor<1> {
        if self.is_l0 {
            let lambdas = self.lambdas.as_ref().expect("L0 gates carry multipliers").val();
            return config.l0.lagrangian(
                self.expected_sparsity(config, layout),
                lambdas,
                config.l0.target(step, steps),
            );
        }
        let ad = &config.adaptive_dropout;
        let mut terms = self.logits.iter().flatten().map(|p| ad.penalty(p.val(), step, steps));
        let first = terms.next().expect("gates exist only when some site is gated");
        terms.fold(first, |acc, t| acc + t)
    }

    /// L0: `1 − E[size] / prunable`, `[1]`, where `E[size]` sums each structure's `P(z ≠ 0)`
    /// times its parameters, multiplied by its module's `P(z ≠ 0)`.
    pub fn expected_sparsity(&self, config: &GateConfig, layout: GateLayout) -> Tensor<1> {
        let hc = &config.l0;
        let device = self.device();
        let ppu = |k: SiteKind| params_per_unit(k, layout.d_model, layout.conv_kernel) as f64;
        let mut size = Tensor::<1>::zeros([1], &device);
        for b in 0..self.blocks {
            let p_module = hc.prob_nonzero(self.modules[b].val()); // [4]
            let unit_size = |kind: SiteKind| -> Tensor<1> {
                match &self.logits[b * 5 + kind.index()] {
                    Some(p) => hc.prob_nonzero(p.val()).sum().mul_scalar(ppu(kind)),
                    None => Tensor::full([1], layout.units(kind) as f64 * ppu(kind), &device),
                }
            };
            let heads = hc
                .prob_nonzero(self.heads[b].val())
                .sum()
                .mul_scalar(layout.head_params() as f64);
            let parts = Tensor::cat(
                vec![
                    unit_size(SiteKind::Ffn1Hidden),
                    heads,
                    unit_size(SiteKind::ConvInput),
                    unit_size(SiteKind::Ffn2Hidden),
                ],
                0,
            ); // [4]
            size = size + (parts * p_module).sum();
        }
        let prunable = (layout.prunable_per_block() * self.blocks) as f64;
        size.div_scalar(prunable).neg().add_scalar(1.0)
    }

    /// The Lagrange multipliers' parameter id (their gradient is negated for ascent).
    pub fn lambda_id(&self) -> Option<burn::module::ParamId> {
        self.lambdas.as_ref().map(|p| p.id)
    }
}

/// `[rows, n]` draws of `ln u − ln(1 − u)`, `u` uniform in (0, 1).
fn logistic_noise(rows: usize, n: usize, rng: &mut SplitMix64, device: &Device) -> Tensor<2> {
    let noise: Vec<f32> = (0..rows * n)
        .map(|_| {
            // Keep u away from 0 and 1 so the logarithms stay finite.
            let x = (rng.next_f64() * (1.0 - 2e-6) + 1e-6) as f32;
            x.ln() - (1.0 - x).ln()
        })
        .collect();
    Tensor::from_data(TensorData::new(noise, [rows, n]), device)
}
