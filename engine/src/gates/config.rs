//! Which pruning method a run uses, and every pruning knob saved with it.

use serde::{Deserialize, Serialize};

use super::{AdaptiveDropoutConfig, GateKind, HardConcreteConfig, SiteKind};
use crate::cut_target::CutTarget;
use crate::limits::{ConfigError, Limit, first_failure};

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
    /// Magnitude method: prune to this target (parameters, a share of the dense model kept,
    /// or a FLOPs speed-up) during training, then fine-tune the smaller model (`None`: train
    /// dense only). Saved as runs saved it when it was a number (see [`CutTarget`]).
    #[serde(default)]
    pub magnitude_budget: Option<CutTarget>,
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

/// Ranges of the pruning knobs a person sets (see `crate::limits`).
pub mod limit {
    use crate::limits::{Bound, Limit};

    pub const THRESHOLD: Limit = Limit::new("threshold", Bound::Closed(0.0), Bound::Closed(1.0));
    pub const GATE_LR: Limit = Limit::new("gate lr", Bound::Open(0.0), Bound::Open(10.0));
    pub const TEMPERATURE: Limit = Limit::new("temperature", Bound::Open(0.0), Bound::None);
    pub const STRENGTH: Limit = Limit::new("strength", Bound::Closed(0.0), Bound::None);
    pub const LOGIT: Limit = Limit::new("logit", Bound::Closed(-20.0), Bound::Closed(20.0));
    pub const TARGET_RAMP: Limit = Limit::new("target ramp fraction", Bound::Open(0.0), Bound::Closed(1.0));
    pub const STRENGTH_FADE_FROM: Limit = Limit::new("strength fade start", Bound::Closed(0.0), Bound::Closed(1.0));
    pub const TARGET_SPARSITY: Limit = Limit::new("target sparsity", Bound::Closed(0.0), Bound::Open(1.0));
    pub const L0_RAMP: Limit = Limit::new("ramp fraction", Bound::Open(0.0), Bound::Closed(1.0));
    pub const LAMBDA2: Limit = Limit::new("lambda2", Bound::Open(0.0), Bound::None);
    pub const LAMBDA1_RATE: Limit = Limit::new("lambda1 rate", Bound::Closed(0.0), Bound::None);
    pub const MAGNITUDE_PRUNE_AT: Limit = Limit::new("magnitude_prune_at", Bound::Closed(0.0), Bound::Open(1.0));
}

impl GateConfig {
    /// The learned gates of this method, if it learns any: the one place that maps a method to
    /// its gate type.
    pub fn gate_kind(&self) -> Option<&dyn GateKind> {
        match self.method {
            Method::AdaptiveDropout => Some(&self.adaptive_dropout),
            Method::L0 => Some(&self.l0),
            Method::None | Method::Magnitude => None,
        }
    }

    /// The magnitude method's cut during training: `(step, target)`. `None` for every other
    /// method, or without a target. The cut comes after a step, so a share that
    /// rounds to step 0 (a trained start cut at once) cuts after the first step, not never.
    pub fn magnitude_cut(&self, steps: usize) -> Option<(usize, CutTarget)> {
        let budget = self.magnitude_budget.filter(|_| self.method == Method::Magnitude)?;
        let step = (self.magnitude_prune_at * steps as f64).round() as usize;
        Some((step.max(1), budget))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let ad = &self.adaptive_dropout;
        limit::THRESHOLD.check(self.threshold)?;
        limit::GATE_LR.check(self.lr)?;
        limit::TEMPERATURE.check(ad.temperature)?;
        limit::STRENGTH.check(ad.strength)?;
        for (name, value) in [
            ("initial logit", ad.initial_logit),
            ("target start", ad.target_start),
            ("target end", ad.target_end),
        ] {
            Limit { name, ..limit::LOGIT }.check(value)?;
        }
        limit::TARGET_RAMP.check(ad.ramp_fraction)?;
        limit::STRENGTH_FADE_FROM.check(ad.strength_fade_from)?;
        limit::TARGET_SPARSITY.check(self.l0.target_sparsity)?;
        limit::L0_RAMP.check(self.l0.ramp_fraction)?;
        limit::LAMBDA2.check(self.l0.lambda2)?;
        limit::LAMBDA1_RATE.check(self.l0.lambda1_rate)?;
        limit::MAGNITUDE_PRUNE_AT.check(self.magnitude_prune_at)?;
        first_failure([
            (
                !self.method.is_gated() || !self.sites.is_empty(),
                "a gated method needs at least one site".to_string(),
            ),
            (
                self.magnitude_budget.is_none_or(|target| target.is_valid()),
                format!(
                    "magnitude budget {} is out of range",
                    self.magnitude_budget.map_or(String::new(), |target| target.to_string())
                ),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_magnitude_cut_comes_after_a_step_even_at_the_runs_start() {
        let config = |prune_at| GateConfig {
            method: Method::Magnitude,
            magnitude_budget: Some(CutTarget::Share(0.5)),
            magnitude_prune_at: prune_at,
            ..GateConfig::default()
        };
        assert_eq!(config(0.75).magnitude_cut(600), Some((450, CutTarget::Share(0.5))));
        // Step 0 has no step before it to cut after: the run would never cut.
        assert_eq!(config(0.0).magnitude_cut(600), Some((1, CutTarget::Share(0.5))));
        assert_eq!(config(0.0001).magnitude_cut(600), Some((1, CutTarget::Share(0.5))));
        let not_magnitude = GateConfig {
            method: Method::L0,
            ..config(0.5)
        };
        assert_eq!(not_magnitude.magnitude_cut(600), None);
    }
}
