//! A gated layer after its matrix product, fused: the bias, an activation, the pruning gate and
//! a dropout, `y = drop(act(h + b) · m)`, with `h` `[batch, frames, units]`, `b` `[units]`,
//! `m` `[batch or 1, 1, units]` and `drop` a hashed dropout (its mask recomputed where it is
//! used, never stored). The feed-forward module's hidden layer uses it with Swish; the
//! attention's gated query and value projections with no activation (`act(z) = z`) and no
//! dropout. Forward one element-wise kernel; backward one kernel in which a
//! unit owns a column and walks its batches and frames, so the bias's and the gate's sums over
//! frames come out of the same pass that writes `dh` (composed, each is a reduction kernel of
//! its own after several element-wise ones).
//!
//! The gate is given as values, or, in training, drawn here from its logits (`GateDraw`): then
//! `m = clamp(σ((n + a) / τ) · k + l, 0, 1)` with the logistic noise `n` hashed in place, and
//! the backward pass returns the logits' gradient, so a site's sample costs no kernel of its own
//! either way (with a sampler, two: `gate_sample.rs`).
//!
//! With z = h + b, σ = sigmoid(z), swish(z) = z·σ, swish′(z) = σ·(1 + z·(1 − σ)) and k the
//! dropout's factor at the element (its multiplier or 0):
//! - dh = dy · k · m · act′(z), db = Σ_(batch, frames) dh,
//! - dm = Σ_frames dy · k · act(z) (summed over the batch too when `m` is shared by the batch),
//! - drawn: da = Σ_rows dm · dm/da + pull · (a − c) (`kept::relaxed_slope`).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::{GateActivation, sigmoid};
use super::gate_relaxation::{GateDraw, draw_settings, gate_batch_stride};
use super::hashed_dropout::{HashedDropout, hashed_index_count};
use super::kept::{add_row_gate_grad, finish_gate_grad, gate_and_slope, kept};
use super::launch::{empty_like, launch_shape};

/// `drop(act(h + b) · m)` at element `at` (of unit `unit`) for the gate value `m`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn gated_element<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    at: usize,
    unit: usize,
    m: F,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    #[comptime] swish: bool,
) -> F {
    let z = pre[at] + bias[unit];
    let k = kept::<F>(at as u32, seed, threshold, F::cast_from(multiplier));
    let activated = if swish { z * sigmoid::<F>(z) } else { z };
    activated * m * k
}

/// A given gate: one unit per element. A drawn one: one unit per batch and hidden unit, walking
/// the frames, so each gate is drawn once rather than once a frame (a draw is two logarithms
/// and an exponential).
#[cube(launch)]
fn forward_kernel<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    output: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    units: u32,
    gate_batch_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    draw_seed: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    #[comptime] swish: bool,
    #[comptime] drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let (frames, units, stride) = (frames as usize, units as usize, gate_batch_stride as usize);
    if drawn {
        let column = ABSOLUTE_POS as usize;
        if column >= batches as usize * units {
            terminate!();
        }
        let (batch, unit) = (column / units, column % units);
        let gate_at = batch * stride + unit;
        let (m, _) = gate_and_slope::<F>(
            gate,
            unit,
            gate_at,
            draw_seed,
            F::cast_from(inverse_temperature),
            F::cast_from(stretch),
            F::cast_from(shift),
            true,
        );
        for frame in 0..frames {
            let at = (batch * frames + frame) * units + unit;
            output[at] = gated_element::<F>(pre, bias, at, unit, m, seed, threshold, multiplier, swish);
        }
    } else {
        let at = ABSOLUTE_POS as usize;
        if at >= batches as usize * frames * units {
            terminate!();
        }
        let unit = at % units;
        let batch = at / (units * frames);
        let m = gate[batch * stride + unit];
        output[at] = gated_element::<F>(pre, bias, at, unit, m, seed, threshold, multiplier, swish);
    }
}

/// One unit per hidden unit (column): dh for every batch and frame, db, and dm per batch (or
/// summed over the batch when the gate is shared, `gate_batch_stride` 0); for a drawn gate, the
/// logit's gradient instead of dm.
#[cube(launch)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    grad_pre: &mut Tensor<F>,
    grad_bias: &mut Tensor<F>,
    grad_gate: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    units: u32,
    gate_batch_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    draw_seed: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    pull: f32,
    pull_target: f32,
    #[comptime] swish: bool,
    #[comptime] drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    if unit >= units as usize {
        terminate!();
    }
    let (frames, units, stride) = (frames as usize, units as usize, gate_batch_stride as usize);
    let b = bias[unit];
    let multiplier = F::cast_from(multiplier);
    let mut sum_bias = F::new(0.0);
    let mut sum_gate = F::new(0.0);
    let (inverse_temperature, stretch) = (F::cast_from(inverse_temperature), F::cast_from(stretch));
    let shift = F::cast_from(shift);
    for batch in 0..batches as usize {
        let gate_at = batch * stride + unit;
        let (m, slope) = gate_and_slope::<F>(
            gate,
            unit,
            gate_at,
            draw_seed,
            inverse_temperature,
            stretch,
            shift,
            drawn,
        );
        let mut sum_gate_batch = F::new(0.0);
        for frame in 0..frames {
            let at = (batch * frames + frame) * units + unit;
            let z = pre[at] + b;
            let dy = grad[at] * kept::<F>(at as u32, seed, threshold, multiplier);
            let (activated, slope) = if swish {
                let s = sigmoid::<F>(z);
                (z * s, s * (F::new(1.0) + z * (F::new(1.0) - s)))
            } else {
                (z, F::new(1.0))
            };
            let dh = dy * m * slope;
            grad_pre[at] = dh;
            sum_bias += dh;
            sum_gate_batch += dy * activated;
        }
        sum_gate = add_row_gate_grad::<F>(
            grad_gate,
            sum_gate,
            sum_gate_batch,
            slope,
            batch,
            unit,
            units,
            stride,
            drawn,
        );
    }
    grad_bias[unit] = sum_bias;
    finish_gate_grad::<F>(grad_gate, gate, sum_gate, unit, stride, pull, pull_target, drawn);
}

/// `[batch, frames, units]` of the pre-activation, and the gate's batch stride (0: shared).
fn layout(pre: &CubeTensor, gate: &CubeTensor, drawn: Option<GateDraw>) -> ([usize; 3], usize) {
    let [batches, frames, units] = pre.shape().dims::<3>();
    let stride = gate_batch_stride(batches, units, gate.shape()[0], drawn);
    ([batches, frames, units], stride)
}

/// `drop(act(pre + bias) · gate)`, `gate` the values or, when `drawn`, the logits `[units]`.
pub(super) fn forward(
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    activation: GateActivation,
    dropout: HashedDropout,
    drawn: Option<GateDraw>,
) -> CubeTensor {
    let (pre, bias, gate) = (into_contiguous(pre), into_contiguous(bias), into_contiguous(gate));
    let ([batches, frames, units], stride) = layout(&pre, &gate, drawn);
    let (draw_seed, relaxation) = draw_settings(drawn);
    // Every element's index is hashed for the dropout: refuse a tensor too large for u32.
    hashed_index_count(pre.shape().num_elements());
    let output = empty_like(&pre, pre.shape());
    let units_launched = if drawn.is_some() {
        batches * units
    } else {
        batches * frames * units
    };
    let (count, dim) = launch_shape(&pre, units_launched);
    let dtype = dtype_to_storage_type(pre.dtype);
    let client = pre.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        pre.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        units as u32,
        stride as u32,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        draw_seed,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        activation == GateActivation::Swish,
        drawn.is_some(),
        dtype,
    );
    output
}

/// The gradients of `pre`, `bias` and `gate` (of its logits when `drawn`, the pull added) from
/// the output's.
pub(super) fn backward(
    grad: CubeTensor,
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    activation: GateActivation,
    dropout: HashedDropout,
    drawn: Option<GateDraw>,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, pre) = (into_contiguous(grad), into_contiguous(pre));
    let (bias, gate) = (into_contiguous(bias), into_contiguous(gate));
    let ([batches, frames, units], stride) = layout(&pre, &gate, drawn);
    let (draw_seed, relaxation) = draw_settings(drawn);
    let grad_pre = empty_like(&pre, pre.shape());
    let grad_bias = empty_like(&bias, bias.shape());
    let grad_gate = empty_like(&gate, gate.shape());
    let (count, dim) = launch_shape(&pre, units);
    let dtype = dtype_to_storage_type(pre.dtype);
    let client = pre.client.clone();
    backward_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        pre.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.into_tensor_arg(),
        grad_pre.clone().into_tensor_arg(),
        grad_bias.clone().into_tensor_arg(),
        grad_gate.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        units as u32,
        stride as u32,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        draw_seed,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        relaxation.pull,
        relaxation.pull_target,
        activation == GateActivation::Swish,
        drawn.is_some(),
        dtype,
    );
    (grad_pre, grad_bias, grad_gate)
}
