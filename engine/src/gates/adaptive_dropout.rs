//! Adaptive dropout (Kubo, Cai, Bacchiani 2024, arXiv 2412.04836): a learned retention
//! probability per unit, trained with relaxed Bernoulli (Gumbel-sigmoid) masks and an
//! uncentred L2 pull of the logits towards a target that falls over training.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

/// Knobs of the method (defaults are ours where the paper is silent; see PAPERS.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveDropoutConfig {
    /// Relaxation temperature `tau` of the Gumbel-sigmoid.
    pub temperature: f64,
    /// Every logit `beta` starts here (sigmoid(3) ≈ 0.95 retention).
    pub initial_logit: f64,
    /// `alpha` in `alpha · Σ (beta − c(t))²`.
    pub strength: f64,
    /// The target `c(t)` moves linearly from `target_start` at step 0 to `target_end` once
    /// `ramp_fraction` of the run is done, and stays there (ours: 1.0, the whole run; less
    /// leaves the last part of the run to settle with the gates near their final values).
    pub target_start: f64,
    pub target_end: f64,
    #[serde(default = "whole_run")]
    pub ramp_fraction: f64,
    /// `alpha` holds until this fraction of the run, then falls linearly to 0 at its end (ours:
    /// 1.0, never). With the pull gone, the gates of units the loss needs rise towards 1 and the
    /// rest stay near `target_end`: kept units stop being dropped at random before the cut.
    #[serde(default = "whole_run")]
    pub strength_fade_from: f64,
    /// The gates at the FFN hidden layers stand in for that layer's standard dropout (ours; the
    /// paper's adaptive dropout *is* the dropout layer). Off in runs saved before it existed.
    #[serde(default)]
    pub replaces_dropout: bool,
}

fn whole_run() -> f64 {
    1.0
}

impl Default for AdaptiveDropoutConfig {
    fn default() -> Self {
        Self {
            temperature: 2.0 / 3.0,
            initial_logit: 3.0,
            strength: 5e-6,
            target_start: 3.0,
            target_end: -3.0,
            ramp_fraction: whole_run(),
            strength_fade_from: whole_run(),
            replaces_dropout: false,
        }
    }
}

impl AdaptiveDropoutConfig {
    /// The regulariser's target `c(t)` at `step` of a run of `steps`.
    pub fn target(&self, step: usize, steps: usize) -> f64 {
        let ramp_steps = (steps.max(1) as f64 * self.ramp_fraction).max(1.0);
        let progress = step as f64 / ramp_steps;
        self.target_start + (self.target_end - self.target_start) * progress.min(1.0)
    }

    /// The regulariser's strength `alpha(t)` at `step` of a run of `steps`.
    pub fn strength_at(&self, step: usize, steps: usize) -> f64 {
        // Steps past the end count as the end.
        let progress = (step as f64 / steps.max(1) as f64).min(1.0);
        if progress <= self.strength_fade_from {
            return self.strength;
        }
        self.strength * (1.0 - progress) / (1.0 - self.strength_fade_from)
    }

    /// A relaxed Bernoulli sample `sigmoid((beta + logistic) / tau)`.
    ///
    /// # Shapes
    /// - `logits`: `[u]`; `logistic`: `[b, u]` draws of `ln u − ln(1 − u)`, `u ~ U(0, 1)` → `[b, u]`
    pub fn sample(&self, logits: Tensor<1>, logistic: Tensor<2>) -> Tensor<2> {
        sigmoid((logistic + logits.unsqueeze::<2>()).div_scalar(self.temperature))
    }

    /// `alpha(t) · Σ (beta − c(t))²`, `[1]`.
    pub fn penalty(&self, logits: Tensor<1>, step: usize, steps: usize) -> Tensor<1> {
        logits
            .sub_scalar(self.target(step, steps))
            .powf_scalar(2.0)
            .sum()
            .mul_scalar(self.strength_at(step, steps))
    }
}

/// Retention probability `sigmoid(beta)`: the score a threshold is compared with, and the scale
/// a kept unit carries at inference.
pub fn retention_of(logit: f32) -> f32 {
    1.0 / (1.0 + (-logit).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_falls_linearly_and_stops_at_the_end() {
        let c = AdaptiveDropoutConfig::default();
        assert_eq!(c.target(0, 100), 3.0);
        assert!((c.target(50, 100) - 0.0).abs() < 1e-12);
        assert_eq!(c.target(100, 100), -3.0);
        assert_eq!(c.target(200, 100), -3.0);
        let early = AdaptiveDropoutConfig {
            ramp_fraction: 0.5,
            ..c.clone()
        };
        assert!((early.target(25, 100) - 0.0).abs() < 1e-12);
        assert_eq!((early.target(50, 100), early.target(90, 100)), (-3.0, -3.0));
    }

    #[test]
    fn strength_holds_then_fades_to_zero_at_the_end() {
        let c = AdaptiveDropoutConfig {
            strength: 4.0,
            strength_fade_from: 0.75,
            ..AdaptiveDropoutConfig::default()
        };
        assert_eq!(c.strength_at(0, 100), 4.0);
        assert_eq!(c.strength_at(75, 100), 4.0);
        // Step 90 is 60 % of the way through the fade (75 → 100): 40 % of alpha is left.
        assert!((c.strength_at(90, 100) - 4.0 * 0.4).abs() < 1e-12);
        assert_eq!(c.strength_at(100, 100), 0.0);
        assert_eq!(c.strength_at(150, 100), 0.0);
        // The default never fades, even at the last step.
        let never = AdaptiveDropoutConfig::default();
        assert_eq!(never.strength_at(100, 100), never.strength);
        assert_eq!(never.strength_at(150, 100), never.strength);
    }

    #[test]
    fn sample_is_the_logistic_relaxation_and_penalty_is_the_uncentred_l2() {
        let device = Device::flex();
        let c = AdaptiveDropoutConfig::default();
        let logits = Tensor::<1>::from_floats([0.0, 2.0], &device);
        let logistic = Tensor::<2>::from_floats([[0.0, -2.0], [1.0, 1.0]], &device);
        let got: Vec<f32> = c.sample(logits.clone(), logistic).try_into_vec_as().unwrap();
        let tau = c.temperature as f32;
        let expected = [
            0.5,
            0.5,
            1.0 / (1.0 + (-1.0 / tau).exp()),
            1.0 / (1.0 + (-3.0 / tau).exp()),
        ];
        for (g, e) in got.iter().zip(expected) {
            assert!((g - e).abs() < 1e-6, "{got:?} vs {expected:?}");
        }
        // At step 0 the target is 3: (0 − 3)² + (2 − 3)² = 10.
        let penalty: f32 = c.penalty(logits, 0, 10).into_scalar();
        assert!((penalty - 10.0 * c.strength as f32).abs() < 1e-9);
    }
}
