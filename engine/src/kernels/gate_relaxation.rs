//! The settings of a relaxed gate sample, for the fused sampler (`gate_sample.rs`) and for the
//! kernels that draw a gate where they use it (`swish_gate.rs`, `glu_gate.rs`): plain data and
//! host code, so the gates build without the `wgpu` feature too.
//!
//! The logistic noise of a sample is hashed from the seed and the draw's position, as dropout
//! masks are (`hashed_dropout.rs`): a kernel that draws a gate computes its noise in place, the
//! backward pass computes it again, and the host computes the same draws for the composed
//! reference ([`GateDraw::noise`]). The kernels' copy is `kept.rs`.

use super::hashed_dropout::mix;

/// One site's training sample `z = clamp(σ((noise + logit) / τ) · stretch + shift, 0, 1)`,
/// and what the backward pass adds to each logit's gradient besides the sample's own.
///
/// The Gumbel-sigmoid of adaptive dropout is `stretch` 1, `shift` 0 (the clamp then changes
/// nothing); hard concrete stretches to `(l, r)`: `stretch` `r − l`, `shift` `l`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GateRelaxation {
    /// `1 / τ`.
    pub inverse_temperature: f32,
    pub stretch: f32,
    pub shift: f32,
    /// A regulariser that pulls each logit on its own (`pull · (logit − pull_target)` is its
    /// gradient): adaptive dropout's `α Σ (β − c)²` gives `pull = 2α`, `pull_target = c`. Its
    /// gradient is added in the sampler's backward kernel, so the regulariser itself needs no
    /// backward pass (the caller detaches it). 0 where none is folded in.
    pub pull: f32,
    pub pull_target: f32,
}

impl GateRelaxation {
    /// The same relaxation with `pull · (logit − target)` added to each logit's gradient.
    pub fn with_pull(self, pull: f32, target: f32) -> Self {
        Self {
            pull,
            pull_target: target,
            ..self
        }
    }
}

/// One site's training sample: its relaxation and the seed of its logistic noise. The draw at
/// row `r` (an utterance, or the one row the batch shares) and unit `u` is hashed from
/// `r · units + u`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateDraw {
    pub relaxation: GateRelaxation,
    /// Mixed once on the host ([`GateDraw::new`]).
    pub seed: u32,
    /// Rows of draws: one per utterance of the batch, or 1 shared by all of them.
    pub rows: usize,
}

impl GateDraw {
    pub fn new(seed: u64, rows: usize, relaxation: GateRelaxation) -> Self {
        let folded = (seed ^ (seed >> 32)) as u32;
        Self {
            relaxation,
            seed: mix(folded),
            rows,
        }
    }

    /// The `[rows, units]` logistic draws, row-major, as the kernels compute them.
    pub fn noise(&self, units: usize) -> Vec<f32> {
        let count = u32::try_from(self.rows * units).expect("a gate's draws are indexed with 32 bits");
        (0..count).map(|index| logistic_draw(self.seed, index)).collect()
    }
}

/// A gate's seed and relaxation as the kernels that may draw it take them: zeros (unread) for a
/// gate given as values.
pub(super) fn draw_settings(drawn: Option<GateDraw>) -> (u32, GateRelaxation) {
    drawn.map_or((0, GateRelaxation::default()), |d| (d.seed, d.relaxation))
}

/// The stride between a gate's rows in a batch of `batches` utterances: 0 where one row is
/// shared, `units` where each utterance has its own. The rows are the draw's for a drawn gate,
/// `value_rows` (the values' first axis) otherwise.
pub(super) fn gate_batch_stride(batches: usize, units: usize, value_rows: usize, drawn: Option<GateDraw>) -> usize {
    let rows = drawn.map_or(value_rows, |d| d.rows);
    assert!(
        rows == 1 || rows == batches,
        "a gate has one row or one per utterance, not {rows} for {batches}"
    );
    if rows == 1 { 0 } else { units }
}

/// `ln u − ln(1 − u)` for the `u` in (0, 1) that `(seed, index)` hashes to: 23 bits of the hash
/// as an odd multiple of 2⁻²⁴, so `u` and `1 − u` are exact in f32 (the kernels get the same
/// two numbers; only the logarithms may differ in their last bits). The tails reach ±16.6.
pub fn logistic_draw(seed: u32, index: u32) -> f32 {
    let bits = mix(mix(index) ^ seed) >> 9;
    let u = (2 * bits + 1) as f32 / (1u32 << 24) as f32;
    u.ln() - (1.0 - u).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draws_are_logistic_and_seeds_differ() {
        let relaxation = GateRelaxation {
            inverse_temperature: 1.0,
            stretch: 1.0,
            shift: 0.0,
            pull: 0.0,
            pull_target: 0.0,
        };
        let draws = GateDraw::new(11, 40, relaxation).noise(2_500);
        let n = draws.len() as f64;
        let mean = draws.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let variance = draws.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        // The standard logistic: mean 0, variance π²/3 ≈ 3.29 (standard error of the variance
        // at n = 1e5 is about 0.02, of the mean about 0.006).
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!(
            (variance - std::f64::consts::PI.powi(2) / 3.0).abs() < 0.15,
            "variance {variance}"
        );
        // P(x < ln 3) = σ(ln 3) = 0.75.
        let below = draws.iter().filter(|&&x| x < 3f32.ln()).count() as f64 / n;
        assert!((below - 0.75).abs() < 0.01, "share below ln 3: {below}");
        assert!(draws.iter().all(|x| x.is_finite() && x.abs() < 16.7));
        let other = GateDraw::new(12, 40, relaxation).noise(2_500);
        assert!(draws.iter().zip(&other).filter(|(a, b)| a == b).count() < 100);
        assert_eq!(GateDraw::new(11, 1, relaxation).noise(2_500), draws[..2_500]);
    }
}
