//! What one step reports and what it differentiates to: the numbers read back from its
//! forward pass, and the gradients of each group of trained modules.

use burn::optim::GradientsParams;
use burn::tensor::Gradients;

use super::forward::StepModules;

/// The host copy of a forward pass's readout tensor.
#[derive(Debug, Clone, Copy)]
pub(super) struct Readout {
    pub loss: f32,
    pub penalty: f32,
    /// L0's expected sparsity (NaN for other methods).
    pub expected_sparsity: f32,
    pub distill: f32,
}

impl Readout {
    /// From the `[4]` values read back (missing values are NaN, which skips the step).
    pub fn from_values(values: &[f32]) -> Self {
        let value = |i: usize| values.get(i).copied().unwrap_or(f32::NAN);
        Self {
            loss: value(0),
            penalty: value(1),
            expected_sparsity: value(2),
            distill: value(3),
        }
    }

    /// Whether the step can be taken: a non-finite loss or penalty would wreck the weights.
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite() && self.penalty.is_finite()
    }
}

/// A step's gradients for the model, the distillation maps and the gates.
pub(super) struct StepGradients {
    pub model: GradientsParams,
    pub maps: Option<GradientsParams>,
    pub gates: Option<GradientsParams>,
}

impl StepGradients {
    /// Takes each module group's gradients out of `grads`.
    pub fn collect(grads: &mut Gradients, modules: StepModules<'_>) -> Self {
        Self {
            model: GradientsParams::from_module(grads, modules.model),
            maps: modules
                .distillation
                .map(|(_, maps)| GradientsParams::from_module(grads, maps)),
            gates: modules.gates.map(|gates| GradientsParams::from_module(grads, gates)),
        }
    }
}
