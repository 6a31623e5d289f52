//! The two kinds of learned gate behind one trait: adaptive dropout (a retention probability per
//! unit) and L0's hard-concrete masks (units, heads and whole modules). Everything that differs
//! between them is here; `Gates` and the trainer only call the trait.

use burn::prelude::*;

use crate::kernels::GateRelaxation;

use super::{
    AdaptiveDropoutConfig, GateLayout, GateTensors, HardConcreteConfig, L0_KEEP_ABOVE, SiteKind, adaptive_dropout,
};

/// How one kind of learned gate trains, scores and keeps units.
pub trait GateKind {
    /// Every gate logit starts here.
    fn initial_logit(&self) -> f64;

    /// Whether attention heads and whole modules carry gates of their own (L0), besides the units.
    fn gates_heads_and_modules(&self) -> bool;

    /// Whether the unit site `kind` carries its own unit gates (L0 masks attention per head).
    fn gates_units_of(&self, kind: SiteKind) -> bool;

    /// Rows of gate draws for a batch of `batch` utterances: one per utterance, or one shared.
    fn draw_rows(&self, batch: usize) -> usize;

    /// Training gate values from `logits` `[u]` and logistic noise `[rows, u]` → `[rows, u]`.
    fn sample(&self, logits: Tensor<1>, logistic: Tensor<2>) -> Tensor<2>;

    /// The relaxation [`GateKind::sample`] computes, as the fused sampler's settings.
    fn relaxation(&self) -> GateRelaxation;

    /// Where the regulariser is exactly `Σ a/2 · (logit − c)²` over the unit logits (each pulled
    /// on its own), `(a, c)` at `step` of `steps`: its gradient `a · (logit − c)` is then added
    /// by the fused sampler's backward pass, and the fused path computes the penalty only as a
    /// value to report (`Gates::sample`, `Gates::penalty`). `None` where the penalty couples the
    /// gates (L0's Lagrangian), which then keeps its own backward pass.
    fn unit_pull(&self, step: usize, steps: usize) -> Option<(f32, f32)>;

    /// The probability that a unit with this logit is kept in training (what the heatmaps show).
    fn retention_of(&self, logit: f32) -> f32;

    /// Inference scores of one gate vector: the value a threshold is compared with, and the
    /// scale a kept unit carries into the pruned model.
    fn inference_scores(&self, logits: &[f32]) -> Vec<f32>;

    /// Scores that order units when cutting to a parameter budget (weakest first). By default
    /// the inference scores.
    fn rank_scores(&self, logits: &[f32]) -> Vec<f32> {
        self.inference_scores(logits)
    }

    /// The inference mask value of a unit with inference score `score` at `threshold`.
    fn mask_value(&self, score: f32, threshold: f64) -> f32;

    /// The smallest threshold a cut may use: units scoring below it are never kept.
    fn keep_floor(&self) -> f64;

    /// The regulariser added to the loss at `step` of `steps`, `[1]`.
    fn penalty(&self, gates: &GateTensors, layout: GateLayout, step: usize, steps: usize) -> Tensor<1>;

    /// Whether the gates drive the expected sparsity to a target (L0), which steps then report.
    fn aims_at_sparsity(&self) -> bool;

    /// The expected sparsity of the prunable parameters, `[1]`, for gates that aim at one.
    fn expected_sparsity(&self, gates: &GateTensors, layout: GateLayout) -> Option<Tensor<1>>;

    /// How the gates' Lagrange multipliers move after `step` of `steps`, `[2]`, for gates that
    /// carry them (L0); computed from the values the step trained with.
    fn multiplier_step(
        &self,
        _gates: &GateTensors,
        _layout: GateLayout,
        _step: usize,
        _steps: usize,
    ) -> Option<Tensor<1>> {
        None
    }

    /// Whether the FFN hidden gates stand in for that layer's standard dropout.
    fn replaces_ffn_dropout(&self) -> bool;
}

impl GateKind for AdaptiveDropoutConfig {
    fn initial_logit(&self) -> f64 {
        self.initial_logit
    }

    fn gates_heads_and_modules(&self) -> bool {
        false
    }

    fn gates_units_of(&self, _kind: SiteKind) -> bool {
        true
    }

    fn draw_rows(&self, batch: usize) -> usize {
        batch
    }

    fn sample(&self, logits: Tensor<1>, logistic: Tensor<2>) -> Tensor<2> {
        AdaptiveDropoutConfig::sample(self, logits, logistic)
    }

    fn relaxation(&self) -> GateRelaxation {
        GateRelaxation {
            inverse_temperature: (1.0 / self.temperature) as f32,
            stretch: 1.0,
            shift: 0.0,
            pull: 0.0,
            pull_target: 0.0,
        }
    }

    /// `α(t) Σ (β − c(t))²` differentiates to `2α(t) · (β − c(t))`.
    fn unit_pull(&self, step: usize, steps: usize) -> Option<(f32, f32)> {
        Some((
            (2.0 * self.strength_at(step, steps)) as f32,
            self.target(step, steps) as f32,
        ))
    }

    fn retention_of(&self, logit: f32) -> f32 {
        adaptive_dropout::retention_of(logit)
    }

    fn inference_scores(&self, logits: &[f32]) -> Vec<f32> {
        logits.iter().map(|&a| adaptive_dropout::retention_of(a)).collect()
    }

    fn mask_value(&self, score: f32, threshold: f64) -> f32 {
        if f64::from(score) >= threshold { score } else { 0.0 }
    }

    fn keep_floor(&self) -> f64 {
        0.0
    }

    fn penalty(&self, gates: &GateTensors, _layout: GateLayout, step: usize, steps: usize) -> Tensor<1> {
        let mut terms = gates
            .unit_logits()
            .map(|logits| AdaptiveDropoutConfig::penalty(self, logits.clone(), step, steps));
        let first = terms.next().expect("gates exist only when some site is gated");
        terms.fold(first, |acc, t| acc + t)
    }

    fn aims_at_sparsity(&self) -> bool {
        false
    }

    fn expected_sparsity(&self, _gates: &GateTensors, _layout: GateLayout) -> Option<Tensor<1>> {
        None
    }

    fn replaces_ffn_dropout(&self) -> bool {
        self.replaces_dropout
    }
}

/// Unit sites that carry their own L0 masks (attention is masked per head instead).
const L0_UNIT_SITES: [SiteKind; 3] = [SiteKind::Ffn1Hidden, SiteKind::ConvInput, SiteKind::Ffn2Hidden];

impl GateKind for HardConcreteConfig {
    fn initial_logit(&self) -> f64 {
        self.initial_log_alpha
    }

    fn gates_heads_and_modules(&self) -> bool {
        true
    }

    fn gates_units_of(&self, kind: SiteKind) -> bool {
        L0_UNIT_SITES.contains(&kind)
    }

    fn draw_rows(&self, _batch: usize) -> usize {
        1
    }

    fn sample(&self, logits: Tensor<1>, logistic: Tensor<2>) -> Tensor<2> {
        HardConcreteConfig::sample(self, logits, logistic)
    }

    fn relaxation(&self) -> GateRelaxation {
        GateRelaxation {
            inverse_temperature: (1.0 / self.temperature) as f32,
            stretch: (self.r - self.l) as f32,
            shift: self.l as f32,
            pull: 0.0,
            pull_target: 0.0,
        }
    }

    fn unit_pull(&self, _step: usize, _steps: usize) -> Option<(f32, f32)> {
        None
    }

    fn retention_of(&self, logit: f32) -> f32 {
        self.prob_nonzero_of(logit)
    }

    fn inference_scores(&self, logits: &[f32]) -> Vec<f32> {
        self.deterministic(logits)
    }

    /// `P(z ≠ 0)`, with the units the deterministic rule zeroes ranked below every other: a
    /// budget cut removes those first, then the least likely to be kept, so saturated gates
    /// (many exactly 1) are still told apart by their `log_alpha`.
    fn rank_scores(&self, logits: &[f32]) -> Vec<f32> {
        self.deterministic(logits)
            .iter()
            .zip(logits)
            .map(|(&z, &a)| self.prob_nonzero_of(a) - if z == 0.0 { 1.0 } else { 0.0 })
            .collect()
    }

    /// L0's deterministic gates already say what goes: the threshold does not apply to masks.
    fn mask_value(&self, score: f32, _threshold: f64) -> f32 {
        score
    }

    /// A unit whose deterministic gate is exactly 0 is removed, whatever the cut asks.
    fn keep_floor(&self) -> f64 {
        L0_KEEP_ABOVE
    }

    fn penalty(&self, gates: &GateTensors, layout: GateLayout, step: usize, steps: usize) -> Tensor<1> {
        let lambdas = gates.lambdas.clone().expect("L0 gates carry multipliers");
        self.lagrangian(
            self.expected_sparsity_of(gates, layout),
            lambdas,
            self.target(step, steps),
        )
    }

    fn aims_at_sparsity(&self) -> bool {
        true
    }

    fn multiplier_step(&self, gates: &GateTensors, layout: GateLayout, step: usize, steps: usize) -> Option<Tensor<1>> {
        Some(HardConcreteConfig::multiplier_step(
            self,
            gates,
            layout,
            self.target(step, steps),
        ))
    }

    fn expected_sparsity(&self, gates: &GateTensors, layout: GateLayout) -> Option<Tensor<1>> {
        Some(self.expected_sparsity_of(gates, layout))
    }

    fn replaces_ffn_dropout(&self) -> bool {
        false
    }
}
