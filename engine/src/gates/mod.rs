//! Pruning gates: which unit vectors are gated, how their masks are drawn in training, what
//! they are at inference, and the penalty that pushes them towards zero.
//!
//! Gates know sites and unit counts, never model internals: they hand out one mask per site and
//! the training code passes those into the model's forward.

mod adaptive_dropout;
mod site;

pub use adaptive_dropout::{AdaptiveDropoutConfig, retention};
pub use site::{SiteKind, params_per_unit, site_units};

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::rng::SplitMix64;

/// How a run learns (or picks) what to prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Dense training, no gates.
    None,
    /// Learned per-unit retention with Gumbel-sigmoid masks.
    AdaptiveDropout,
    /// Dense training; units are ranked by weight norms when pruning.
    Magnitude,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::None, Method::AdaptiveDropout, Method::Magnitude];

    pub fn name(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::AdaptiveDropout => "adaptive-dropout",
            Method::Magnitude => "magnitude",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether training carries learned gates.
    pub fn is_gated(self) -> bool {
        matches!(self, Method::AdaptiveDropout)
    }
}

/// Every pruning knob, saved with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    pub method: Method,
    /// The gated sites (every block gets each of them).
    pub sites: Vec<SiteKind>,
    pub adaptive_dropout: AdaptiveDropoutConfig,
    /// Default retention threshold: a unit is kept iff its score is at least this.
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
                !self.method.is_gated() || !self.sites.is_empty(),
                "a gated method needs at least one site".to_string(),
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

/// The learned gate parameters of a whole model.
#[derive(Module, Debug)]
pub struct Gates {
    /// Indexed `block · 5 + site`: that site's logits `[units]`, or `None` where it is not gated.
    logits: Vec<Option<Param<Tensor<1>>>>,
    blocks: usize,
}

impl Gates {
    /// Fresh gates for `blocks` blocks; `units(kind)` is a site's width.
    pub fn new(config: &GateConfig, blocks: usize, units: impl Fn(SiteKind) -> usize, device: &Device) -> Self {
        let init = config.adaptive_dropout.initial_logit;
        let logits = (0..blocks)
            .flat_map(|_| SiteKind::ALL)
            .map(|kind| {
                config
                    .sites
                    .contains(&kind)
                    .then(|| Param::from_tensor(Tensor::full([units(kind)], init, device)))
            })
            .collect();
        Self { logits, blocks }
    }

    pub fn num_blocks(&self) -> usize {
        self.blocks
    }

    fn per_block<T>(&self, mut f: impl FnMut(Tensor<1>) -> T) -> Vec<PerSite<T>> {
        (0..self.blocks)
            .map(|b| std::array::from_fn(|s| self.logits[b * 5 + s].as_ref().map(|p| f(p.val()))))
            .collect()
    }

    /// Training masks `[batch, units]` per block and site, one independent draw per utterance.
    /// The logistic noise comes from `rng` on the host, so every backend sees the same draws.
    pub fn sample(
        &self,
        config: &AdaptiveDropoutConfig,
        batch: usize,
        rng: &mut SplitMix64,
    ) -> Vec<PerSite<Tensor<2>>> {
        self.per_block(|logits| {
            let [u] = logits.dims();
            let noise: Vec<f32> = (0..batch * u)
                .map(|_| {
                    // u in (0, 1): ln u − ln(1 − u) stays finite.
                    let x = (rng.next_f64() * (1.0 - 2e-7) + 1e-7) as f32;
                    x.ln() - (1.0 - x).ln()
                })
                .collect();
            let noise = Tensor::<2>::from_data(TensorData::new(noise, [batch, u]), &logits.device());
            config.sample(logits, noise)
        })
    }

    /// Retention probability of every unit.
    pub fn retention(&self) -> Vec<PerSite<Tensor<1>>> {
        self.per_block(retention)
    }

    /// Inference gate values: the retention where it reaches `threshold`, 0 elsewhere.
    pub fn deterministic(&self, threshold: f64) -> Vec<PerSite<Tensor<1>>> {
        self.per_block(|logits| {
            let p = retention(logits);
            p.clone().mask_fill(p.lower_elem(threshold), 0.0)
        })
    }

    /// The regulariser summed over every gated site, `[1]`.
    pub fn penalty(&self, config: &AdaptiveDropoutConfig, step: usize, steps: usize) -> Tensor<1> {
        let mut terms = self
            .logits
            .iter()
            .flatten()
            .map(|p| config.penalty(p.val(), step, steps));
        let first = terms.next().expect("gates exist only when some site is gated");
        terms.fold(first, |acc, t| acc + t)
    }
}
