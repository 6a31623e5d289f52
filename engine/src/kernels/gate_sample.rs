//! A site's relaxed gate sample, fused: `z = clamp(σ((n + a) / τ) · k + l, 0, 1)` with the
//! logits `a` `[units]` and the logistic noise `n` `[rows, units]` (`GateRelaxation` names the
//! constants). Forward one element-wise kernel; backward one kernel in which a unit owns a logit
//! and walks the rows, so the sum over rows that the logit's broadcast needs comes out of the
//! pass that differentiates the sigmoid, with the folded regulariser's pull added (composed, the
//! sample's backward, the broadcast's reduction, the penalty's backward and the add of the two
//! gradients are four kernels or more).
//!
//! With s = σ((n + a) / τ) and v = s·k + l: dz/da = k·s·(1 − s)/τ where 0 ≤ v ≤ 1 (the clamp
//! passes the gradient there, as burn's does), 0 elsewhere; da = Σ_rows dz · dz/da + pull·(a − c).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::sigmoid;
use super::gate_relaxation::GateRelaxation;
use super::launch::{empty_like, launch_shape};

#[cube(launch)]
fn forward_kernel<F: Float>(
    logits: &Tensor<F>,
    noise: &Tensor<F>,
    sample: &mut Tensor<F>,
    elements: u32,
    units: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let s = sigmoid::<F>((noise[at] + logits[at % units as usize]) * F::cast_from(inverse_temperature));
    let mut z = s * F::cast_from(stretch) + F::cast_from(shift);
    if z < F::new(0.0) {
        z = F::new(0.0);
    }
    if z > F::new(1.0) {
        z = F::new(1.0);
    }
    sample[at] = z;
}

/// One unit per logit: the sample's gradient summed over the rows, plus the pull.
#[cube(launch)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    logits: &Tensor<F>,
    noise: &Tensor<F>,
    grad_logits: &mut Tensor<F>,
    rows: u32,
    units: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    pull: f32,
    pull_target: f32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    if unit >= units as usize {
        terminate!();
    }
    let units = units as usize;
    let (inverse_temperature, stretch) = (F::cast_from(inverse_temperature), F::cast_from(stretch));
    let shift = F::cast_from(shift);
    let a = logits[unit];
    let mut sum = F::new(0.0);
    for row in 0..rows as usize {
        let at = row * units + unit;
        let s = sigmoid::<F>((noise[at] + a) * inverse_temperature);
        let v = s * stretch + shift;
        if v >= F::new(0.0) && v <= F::new(1.0) {
            sum += grad[at] * stretch * s * (F::new(1.0) - s) * inverse_temperature;
        }
    }
    grad_logits[unit] = sum + F::cast_from(pull) * (a - F::cast_from(pull_target));
}

/// The sample `[rows, units]`.
pub(super) fn forward(logits: CubeTensor, noise: CubeTensor, relaxation: GateRelaxation) -> CubeTensor {
    let (logits, noise) = (into_contiguous(logits), into_contiguous(noise));
    let [_, units] = noise.shape().dims::<2>();
    let elements = noise.shape().num_elements();
    let sample = empty_like(&noise, noise.shape());
    let (count, dim) = launch_shape(&noise, elements);
    let dtype = dtype_to_storage_type(noise.dtype);
    let client = noise.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        logits.into_tensor_arg(),
        noise.into_tensor_arg(),
        sample.clone().into_tensor_arg(),
        elements as u32,
        units as u32,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        dtype,
    );
    sample
}

/// The logits' gradient `[units]` from the sample's, with the pull added.
pub(super) fn backward(
    grad: CubeTensor,
    logits: CubeTensor,
    noise: CubeTensor,
    relaxation: GateRelaxation,
) -> CubeTensor {
    let (grad, logits, noise) = (into_contiguous(grad), into_contiguous(logits), into_contiguous(noise));
    let [rows, units] = noise.shape().dims::<2>();
    let grad_logits = empty_like(&logits, logits.shape());
    let (count, dim) = launch_shape(&logits, units);
    let dtype = dtype_to_storage_type(logits.dtype);
    let client = logits.client.clone();
    backward_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        logits.into_tensor_arg(),
        noise.into_tensor_arg(),
        grad_logits.clone().into_tensor_arg(),
        rows as u32,
        units as u32,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        relaxation.pull,
        relaxation.pull_target,
        dtype,
    );
    grad_logits
}
