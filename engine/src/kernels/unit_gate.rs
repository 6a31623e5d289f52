//! A unit gate as the model hands it to the layer it gates, for one forward pass.

use burn::prelude::*;

use super::gate_relaxation::GateDraw;

/// The gate of a site's units: its values `[rows, 1, u]` (one row per utterance, or one shared),
/// or, in training on the fused path, a relaxed sample still to be drawn from the logits `[u]`
/// by the kernel that uses it (`swish_gate.rs`), so that the sample is never a tensor of its
/// own and its backward pass no kernel of its own.
#[derive(Debug, Clone)]
pub enum UnitGate {
    Values(Tensor<3>),
    Drawn { logits: Tensor<1>, draw: GateDraw },
}

impl UnitGate {
    /// The values `[rows, 1, u]`, for a layer that cannot draw the gate itself: a drawn gate is
    /// sampled by the fused sampler (a kernel, and one more backward) from the same draws.
    pub fn values(self) -> Tensor<3> {
        match self {
            Self::Values(values) => values,
            Self::Drawn { logits, draw } => {
                let units = logits.dims()[0];
                let noise = TensorData::new(draw.noise(units), [draw.rows, units]);
                let noise = Tensor::<2>::from_data(noise, &logits.device());
                super::fused_gate_sample(logits, noise, draw.relaxation).reshape([draw.rows, 1, units])
            }
        }
    }
}

impl From<Tensor<3>> for UnitGate {
    fn from(values: Tensor<3>) -> Self {
        Self::Values(values)
    }
}
