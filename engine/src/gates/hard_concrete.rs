//! Hard-concrete gates for L0 pruning (Louizos, Welling, Kingma 2018; constants as in CoFi,
//! Xia et al. 2022), with the Lagrangian of Jiang et al. 2023 (arXiv 2305.19549) that drives the
//! expected sparsity to a target.
//!
//! The Lagrangian is theirs, `λ₁ (ŝ − t) + λ₂ (ŝ − t)²`; how its multipliers move is ours
//! (session 39). Stepping both by gradient ascent with Adam, as CoFi does, misses the target in
//! the short runs the lab makes: Adam moves λ₁ by about its learning rate each step whatever
//! the gap, so it winds up during the hundred-odd steps the gates need to start closing, and the
//! expected sparsity overshoots; λ₂'s gradient `(ŝ − t)²` is never negative, so λ₂ only grows.
//! A gate closed too far comes back slowly (its `P(z ≠ 0)` hardly moves with `log α`), so the
//! overshoot stays in the cut. Here instead:
//! - λ₂ is a constant ([`HardConcreteConfig::lambda2`]): the quadratic term pulls the expected
//!   sparsity towards the target in proportion to the gap, with no memory to wind up;
//! - λ₁ integrates the gap of the *cut* (what L0's own rule would remove now,
//!   [`HardConcreteConfig::cut_sparsity_of`]) rather than of the expectation, because at the end
//!   of a short run many gates are undecided: a module at `log α = −3` counts a fifth of its
//!   parameters in the expectation and none in the cut;
//! - λ₁ integrates only while the gates have caught up with the pull on them
//!   ([`HardConcreteConfig::multiplier_step`]), the anti-windup of a PI controller.

use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use serde::{Deserialize, Serialize};

use super::{GateLayout, GateTensors, SiteKind, params_per_unit};

/// The smallest score an L0 unit keeps (its deterministic gate value is exactly 0 when removed).
pub const L0_KEEP_ABOVE: f64 = 1e-6;

/// Knobs of the L0 method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HardConcreteConfig {
    /// Stretch interval `(l, r)`: samples of the concrete distribution are stretched to it and
    /// clamped to [0, 1], which puts real probability mass on exactly 0 and exactly 1.
    pub l: f64,
    pub r: f64,
    /// Temperature `beta` of the concrete distribution.
    pub temperature: f64,
    /// Every `log_alpha` starts here (P(z ≠ 0) ≈ 0.97 at 3).
    pub initial_log_alpha: f64,
    /// Expected sparsity of the prunable parameters the run is driven to.
    pub target_sparsity: f64,
    /// The target ramps linearly from 0 over this fraction of the run, then holds.
    pub ramp_fraction: f64,
    /// The Lagrangian's `λ₂`, held constant (see the module's header). At 100 a gap of 0.01 in
    /// the expected sparsity pulls on it with a force of 2.
    #[serde(default = "default_lambda2")]
    pub lambda2: f64,
    /// How fast `λ₁` follows the cut's gap to the target: by this times the gap each step it
    /// integrates. With `λ₂` at 100, 3 moves the expected sparsity with a time constant of
    /// `2 λ₂ / rate` ≈ 67 steps.
    #[serde(default = "default_lambda1_rate")]
    pub lambda1_rate: f64,
}

fn default_lambda2() -> f64 {
    100.0
}

fn default_lambda1_rate() -> f64 {
    3.0
}

/// A cut within this of its target is on it: `λ₁` holds still. The cut moves in steps (a
/// module is several percent of the prunable parameters), and integrating a gap the cut cannot
/// close would cycle a module in and out.
const ON_TARGET: f64 = 0.01;

/// `λ₁` integrates only while the gates' expected sparsity is within this of where the pull on
/// it balances (`|λ₁ + 2 λ₂ (ŝ − t)| < 2 λ₂ · CAUGHT_UP`).
const CAUGHT_UP: f64 = 0.02;

impl Default for HardConcreteConfig {
    fn default() -> Self {
        Self {
            l: -0.1,
            r: 1.1,
            temperature: 2.0 / 3.0,
            initial_log_alpha: 3.0,
            target_sparsity: 0.5,
            ramp_fraction: 0.5,
            lambda2: default_lambda2(),
            lambda1_rate: default_lambda1_rate(),
        }
    }
}

impl HardConcreteConfig {
    /// A training sample `z = clamp(sigmoid((logistic + log_alpha) / beta) · (r − l) + l, 0, 1)`.
    ///
    /// # Shapes
    /// - `log_alpha`: `[u]`; `logistic`: `[1, u]` draws of `ln u − ln(1 − u)` → `[1, u]`
    pub fn sample(&self, log_alpha: Tensor<1>, logistic: Tensor<2>) -> Tensor<2> {
        let s = sigmoid((logistic + log_alpha.unsqueeze::<2>()).div_scalar(self.temperature));
        s.mul_scalar(self.r - self.l).add_scalar(self.l).clamp(0.0, 1.0)
    }

    /// `P(z ≠ 0) = sigmoid(log_alpha − beta · ln(−l / r))`, differentiable.
    pub fn prob_nonzero(&self, log_alpha: Tensor<1>) -> Tensor<1> {
        sigmoid(log_alpha.sub_scalar(self.temperature * (-self.l / self.r).ln()))
    }

    /// [`HardConcreteConfig::prob_nonzero`] of one `log_alpha`, on the host.
    pub fn prob_nonzero_of(&self, log_alpha: f32) -> f32 {
        let shift = self.temperature * (-self.l / self.r).ln();
        (1.0 / (1.0 + (-(f64::from(log_alpha) - shift)).exp())) as f32
    }

    /// The test-time gate values of one mask vector, on the host: the `round(Σ P(z = 0))`
    /// entries with the lowest `log_alpha` are 0, the rest `clamp(sigmoid(log_alpha)·(r − l) + l, 0, 1)`.
    pub fn deterministic(&self, log_alpha: &[f32]) -> Vec<f32> {
        let shift = self.temperature * (-self.l / self.r).ln();
        let p_zero: f64 = log_alpha
            .iter()
            .map(|&a| 1.0 - 1.0 / (1.0 + (-(f64::from(a) - shift)).exp()))
            .sum();
        let zeros = (p_zero.round() as usize).min(log_alpha.len());
        let mut order: Vec<usize> = (0..log_alpha.len()).collect();
        order.sort_by(|&a, &b| log_alpha[a].total_cmp(&log_alpha[b]).then(a.cmp(&b)));
        let mut values: Vec<f32> = log_alpha
            .iter()
            .map(|&a| {
                let s = 1.0 / (1.0 + (-f64::from(a)).exp());
                (s * (self.r - self.l) + self.l).clamp(0.0, 1.0) as f32
            })
            .collect();
        for &i in &order[..zeros] {
            values[i] = 0.0;
        }
        values
    }

    /// The sparsity target `t(step)`.
    pub fn target(&self, step: usize, steps: usize) -> f64 {
        let ramp = (self.ramp_fraction * steps as f64).max(1.0);
        self.target_sparsity * (step as f64 / ramp).min(1.0)
    }

    /// `1 − E[size] / prunable`, `[1]`, where `E[size]` sums each structure's `P(z ≠ 0)`
    /// times its parameters, multiplied by its module's `P(z ≠ 0)`.
    pub fn expected_sparsity_of(&self, gates: &GateTensors, layout: GateLayout) -> Tensor<1> {
        let device = &gates.device;
        let ppu = |k: SiteKind| params_per_unit(k, layout.d_model, layout.conv_kernel) as f64;
        let mut size = Tensor::<1>::zeros([1], device);
        let blocks = gates.units.len();
        for b in 0..blocks {
            let p_module = self.prob_nonzero(gates.modules[b].clone()); // [4]
            let unit_size = |kind: SiteKind| -> Tensor<1> {
                match gates.unit_logits_at(b, kind) {
                    Some(logits) => self.prob_nonzero(logits.clone()).sum().mul_scalar(ppu(kind)),
                    None => Tensor::full([1], layout.units(kind) as f64 * ppu(kind), device),
                }
            };
            let heads = self
                .prob_nonzero(gates.heads[b].clone())
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
        let prunable = (layout.prunable_per_block() * blocks) as f64;
        size.div_scalar(prunable).neg().add_scalar(1.0)
    }

    /// The share of the prunable parameters L0's own cut would remove now, `[1]`, on the device
    /// and not differentiated: [`HardConcreteConfig::expected_sparsity_of`] with every mask
    /// vector's deterministic rule ([`HardConcreteConfig::deterministic`], and the cut's
    /// removal of entries whose value is 0) in place of its probabilities.
    pub fn cut_sparsity_of(&self, gates: &GateTensors, layout: GateLayout) -> Tensor<1> {
        let device = &gates.device;
        let ppu = |k: SiteKind| params_per_unit(k, layout.d_model, layout.conv_kernel) as f64;
        let mut size = Tensor::<1>::zeros([1], device);
        for b in 0..gates.units.len() {
            // Entries kept of `units`, each of `params` parameters, under `log_alpha` (if gated).
            let kept_size = |log_alpha: Option<&Tensor<1>>, units: usize, params: f64| -> Tensor<1> {
                match log_alpha {
                    Some(a) => self.zeroed(a.clone()).neg().add_scalar(units as f64).mul_scalar(params),
                    None => Tensor::full([1], units as f64 * params, device),
                }
            };
            let site_size = |kind: SiteKind| kept_size(gates.unit_logits_at(b, kind), layout.units(kind), ppu(kind));
            let heads_size = kept_size(Some(&gates.heads[b]), layout.num_heads, layout.head_params() as f64);
            let parts = Tensor::cat(
                vec![
                    site_size(SiteKind::Ffn1Hidden),
                    heads_size,
                    site_size(SiteKind::ConvInput),
                    site_size(SiteKind::Ffn2Hidden),
                ],
                0,
            ); // [4], in module order
            size = size + (parts * self.kept_entries(gates.modules[b].clone())).sum();
        }
        let prunable = (layout.prunable_per_block() * gates.units.len()) as f64;
        size.div_scalar(prunable).neg().add_scalar(1.0)
    }

    /// How many entries of `log_alpha` `[n]` the deterministic rule zeroes, `[1]`: the
    /// `round(Σ P(z = 0))` lowest, and every entry whose value clamps to 0. Both sets are the
    /// lowest entries, so their union is the larger of the two counts.
    fn zeroed(&self, log_alpha: Tensor<1>) -> Tensor<1> {
        let expected = self.prob_nonzero(log_alpha.clone()).neg().add_scalar(1.0).sum().round();
        let clamped = log_alpha.lower_equal_elem(self.closed_at_or_below()).float().sum();
        expected.max_pair(clamped)
    }

    /// Which entries of a short mask vector `log_alpha` `[n]` the deterministic rule keeps, as
    /// 1 or 0, `[n]`: those ranked (by `log_alpha`, then position, as on the host) at or above
    /// the zeroed count. Ranks come from an `[n, n]` comparison, fine for a block's four modules.
    fn kept_entries(&self, log_alpha: Tensor<1>) -> Tensor<1> {
        let n = log_alpha.dims()[0];
        let device = log_alpha.device();
        let others = log_alpha.clone().reshape([1, n]).expand([n, n]); // [j, k] = a_k
        let this = log_alpha.clone().reshape([n, 1]).expand([n, n]); // [j, k] = a_j
        let earlier: Vec<f32> = (0..n * n).map(|i| if i % n < i / n { 1.0 } else { 0.0 }).collect();
        let earlier = Tensor::<2>::from_data(TensorData::new(earlier, [n, n]), &device);
        let below = others.clone().lower(this.clone()).float();
        let tied_earlier = others.equal(this).float() * earlier;
        let rank = (below + tied_earlier).sum_dim(1).reshape([n]);
        let zeroed = self.zeroed(log_alpha).expand([n]);
        rank.greater_equal(zeroed).float()
    }

    /// The `log_alpha` at or below which an entry's deterministic value is at most
    /// [`L0_KEEP_ABOVE`] (the cut removes it): where `sigmoid(a) (r − l) + l` reaches it.
    fn closed_at_or_below(&self) -> f64 {
        let s = (L0_KEEP_ABOVE - self.l) / (self.r - self.l);
        (s / (1.0 - s)).ln()
    }

    /// `λ₁`'s step `[2]` (`λ₂` does not move) for gates whose values are `gates`, at a step whose
    /// target is `target`: `rate · (cut − t)` while the gates have caught up with the pull on
    /// their expected sparsity, else 0 (see the module's header). On the device, no read-back.
    pub fn multiplier_step(&self, gates: &GateTensors, layout: GateLayout, target: f64) -> Tensor<1> {
        let lambdas = gates.lambdas.clone().expect("L0 gates carry multipliers");
        // λ₂ as the Lagrangian holds it: the config's, or a resumed older run's learned one.
        let (lambda1, lambda2) = (lambdas.clone().narrow(0, 0, 1), lambdas.narrow(0, 1, 1));
        let expected = self.expected_sparsity_of(gates, layout);
        let pull = lambda1 + expected.sub_scalar(target).mul(lambda2.clone()).mul_scalar(2.0);
        let caught_up = pull.abs().lower(lambda2.mul_scalar(2.0 * CAUGHT_UP)).float();
        let gap = self.cut_sparsity_of(gates, layout).sub_scalar(target);
        let off_target = gap.clone().abs().greater_elem(ON_TARGET).float();
        let step = gap.mul_scalar(self.lambda1_rate) * caught_up * off_target;
        Tensor::cat(vec![step, Tensor::zeros([1], &gates.device)], 0)
    }

    /// `lambda1 · (s − t) + lambda2 · (s − t)²`, `[1]`. `lambdas` is `[2]`.
    pub fn lagrangian(&self, expected_sparsity: Tensor<1>, lambdas: Tensor<1>, target: f64) -> Tensor<1> {
        let gap = expected_sparsity.sub_scalar(target); // [1]
        let terms = Tensor::cat(vec![gap.clone(), gap.powf_scalar(2.0)], 0); // [2]
        (lambdas * terms).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_of_nonzero_matches_the_sampling_distribution() {
        // P(z > 0) = P(s > -l / (r - l)); estimate it by sampling the logistic noise.
        let c = HardConcreteConfig::default();
        let device = Device::flex();
        let log_alpha = 0.7f32;
        let mut rng = crate::rng::SplitMix64::new(4);
        let n = 20_000;
        let noise: Vec<f32> = (0..n)
            .map(|_| {
                let u = rng.next_f64() * (1.0 - 2e-6) + 1e-6;
                (u.ln() - (1.0 - u).ln()) as f32
            })
            .collect();
        let z: Vec<f32> = c
            .sample(
                Tensor::<1>::full([n], log_alpha, &device),
                Tensor::<2>::from_data(TensorData::new(noise, [1, n]), &device)
                    .reshape([n, 1])
                    .reshape([1, n]),
            )
            .try_into_vec_as()
            .unwrap();
        let empirical = z.iter().filter(|&&x| x > 0.0).count() as f64 / n as f64;
        let closed: f32 = c
            .prob_nonzero(Tensor::<1>::from_floats([log_alpha], &device))
            .into_scalar();
        // Binomial standard error at n = 20000 is about 0.003.
        assert!((empirical - f64::from(closed)).abs() < 0.015, "{empirical} vs {closed}");
        assert!(z.iter().all(|&x| (0.0..=1.0).contains(&x)));
    }

    #[test]
    fn deterministic_zeroes_the_expected_number_of_lowest_entries() {
        let c = HardConcreteConfig::default();
        // Two entries far below zero (P(z = 0) ≈ 1), two far above (≈ 0): two zeros.
        let values = c.deterministic(&[-8.0, 6.0, -9.0, 7.0]);
        assert_eq!(values[0], 0.0);
        assert_eq!(values[2], 0.0);
        assert!(values[1] > 0.99 && values[3] > 0.99, "{values:?}");
        assert_eq!(c.target(0, 100), 0.0);
        assert_eq!(c.target(25, 100), 0.25);
        assert_eq!(c.target(90, 100), 0.5);
    }
}
