//! The settings of a relaxed gate sample, for the fused sampler (`gate_sample.rs`): plain data,
//! so the gates build without the `wgpu` feature too.

/// One site's training sample `z = clamp(σ((noise + logit) / τ) · stretch + shift, 0, 1)`,
/// and what the backward pass adds to each logit's gradient besides the sample's own.
///
/// The Gumbel-sigmoid of adaptive dropout is `stretch` 1, `shift` 0 (the clamp then changes
/// nothing); hard concrete stretches to `(l, r)`: `stretch` `r − l`, `shift` `l`.
#[derive(Debug, Clone, Copy, PartialEq)]
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
