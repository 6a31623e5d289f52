//! The convolution module's gated linear unit after its first matrix product, fused with the
//! product's bias, the pruning gate on the channels and the zeroing of padded frames:
//! `y = (a + b_a) · σ(g + b_g) · m · keep`, where `pre` `[batch, frames, 2c]` holds `a` in its
//! first `c` channels and `g` in the rest, `bias` is `[2c]`, `m` `[batch or 1, 1, c]` and `keep`
//! `[batch, frames]` is 1 on real frames and 0 on padding. Forward one element-wise kernel (no
//! slices of `pre`); backward one, in which a unit owns a channel and walks its batches and
//! frames, writing both halves' gradients and summing the biases' and the gate's. The gate's and
//! the biases' gradients share one buffer (the gate's first, the biases' from the next multiple
//! of 64 elements), handed out as two views: separate, the kernel would bind 8 buffers, over
//! the limit of 7.
//!
//! With A = a + b_a, s = σ(g + b_g) and e = dy · m · keep:
//! - da = e · s, dg = e · A · s · (1 − s), db_a = Σ da, db_g = Σ dg (over batches and frames),
//! - dm = Σ_frames dy · keep · A · s (summed over the batch too when `m` is shared).
//!
//! As in `swish_gate.rs`, the gate may be drawn here from its logits in training (`GateDraw`):
//! `m` is then the relaxed sample and the first backward kernel returns the logits' gradient,
//! `Σ_rows dm · dm/da + pull · (a − c)`.

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::sigmoid;
use super::flat_pack::{view, view_start_after};
use super::gate_relaxation::{GateDraw, draw_settings, gate_batch_stride};
use super::kept::{add_row_gate_grad, finish_gate_grad, gate_and_slope};
use super::launch::{empty_like, launch_shape};

/// `(a + b_a) · σ(g + b_g) · m · keep` at row `row` (batch · frames + frame) and `channel`.
#[cube]
fn glu_element<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    keep: &Tensor<F>,
    row: usize,
    channel: usize,
    channels: usize,
    m: F,
) -> F {
    let a = pre[2 * row * channels + channel] + bias[channel];
    let g = pre[2 * row * channels + channels + channel] + bias[channels + channel];
    a * sigmoid::<F>(g) * m * keep[row]
}

/// A given gate: one unit per element. A drawn one: one unit per batch and channel, walking the
/// frames, so each gate is drawn once rather than once a frame.
#[cube(launch)]
fn forward_kernel<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    keep: &Tensor<F>,
    output: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    channels: u32,
    gate_batch_stride: u32,
    draw_seed: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    #[comptime] drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let (frames, channels, stride) = (frames as usize, channels as usize, gate_batch_stride as usize);
    if drawn {
        let column = ABSOLUTE_POS as usize;
        if column >= batches as usize * channels {
            terminate!();
        }
        let (batch, channel) = (column / channels, column % channels);
        let gate_at = batch * stride + channel;
        let (m, _) = gate_and_slope::<F>(
            gate,
            channel,
            gate_at,
            draw_seed,
            F::cast_from(inverse_temperature),
            F::cast_from(stretch),
            F::cast_from(shift),
            true,
        );
        for frame in 0..frames {
            let row = batch * frames + frame;
            output[row * channels + channel] = glu_element::<F>(pre, bias, keep, row, channel, channels, m);
        }
    } else {
        let at = ABSOLUTE_POS as usize;
        if at >= batches as usize * frames * channels {
            terminate!();
        }
        let channel = at % channels;
        let row = at / channels; // batch · frames + frame
        let m = gate[(row / frames) * stride + channel];
        output[at] = glu_element::<F>(pre, bias, keep, row, channel, channels, m);
    }
}

/// One unit per channel: both halves' gradients at every batch and frame, both halves' bias
/// gradients (at `bias_start` in `grad_gate`), and the gate's per batch (or summed over the batch
/// when shared, `gate_batch_stride` 0); for a drawn gate, the logit's gradient instead.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    keep: &Tensor<F>,
    grad_pre: &mut Tensor<F>,
    grad_gate: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    channels: u32,
    gate_batch_stride: u32,
    bias_start: u32,
    draw_seed: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    pull: f32,
    pull_target: f32,
    #[comptime] drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let channel = ABSOLUTE_POS as usize;
    if channel >= channels as usize {
        terminate!();
    }
    let (frames, channels, stride) = (frames as usize, channels as usize, gate_batch_stride as usize);
    let (bias_a, bias_g) = (bias[channel], bias[channels + channel]);
    let mut sum_gate = F::new(0.0);
    let mut sum_bias_a = F::new(0.0);
    let mut sum_bias_g = F::new(0.0);
    let (inverse_temperature, stretch) = (F::cast_from(inverse_temperature), F::cast_from(stretch));
    let shift = F::cast_from(shift);
    for batch in 0..batches as usize {
        let gate_at = batch * stride + channel;
        let (m, slope) = gate_and_slope::<F>(
            gate,
            channel,
            gate_at,
            draw_seed,
            inverse_temperature,
            stretch,
            shift,
            drawn,
        );
        let mut sum_gate_batch = F::new(0.0);
        for frame in 0..frames {
            let row = batch * frames + frame;
            let (at_a, at_g) = (2 * row * channels + channel, 2 * row * channels + channels + channel);
            let a = pre[at_a] + bias_a;
            let s = sigmoid::<F>(pre[at_g] + bias_g);
            let dy_kept = grad[row * channels + channel] * keep[row];
            let e = dy_kept * m;
            let da = e * s;
            let dg = e * a * s * (F::new(1.0) - s);
            grad_pre[at_a] = da;
            grad_pre[at_g] = dg;
            sum_bias_a += da;
            sum_bias_g += dg;
            sum_gate_batch += dy_kept * a * s;
        }
        sum_gate = add_row_gate_grad::<F>(
            grad_gate,
            sum_gate,
            sum_gate_batch,
            slope,
            batch,
            channel,
            channels,
            stride,
            drawn,
        );
    }
    finish_gate_grad::<F>(grad_gate, gate, sum_gate, channel, stride, pull, pull_target, drawn);
    let bias_start = bias_start as usize;
    grad_gate[bias_start + channel] = sum_bias_a;
    grad_gate[bias_start + channels + channel] = sum_bias_g;
}

/// `[batch, frames, channels]` of the output, and the gate's batch stride (0: shared).
fn layout(pre: &CubeTensor, gate: &CubeTensor, drawn: Option<GateDraw>) -> ([usize; 3], usize) {
    let [batches, frames, both] = pre.shape().dims::<3>();
    let channels = both / 2;
    let stride = gate_batch_stride(batches, channels, gate.shape()[0], drawn);
    ([batches, frames, channels], stride)
}

/// `(a + b_a) · σ(g + b_g) · gate · keep`, `gate` the values or, when `drawn`, the logits `[c]`.
pub(super) fn forward(
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    keep: CubeTensor,
    drawn: Option<GateDraw>,
) -> CubeTensor {
    let (pre, bias) = (into_contiguous(pre), into_contiguous(bias));
    let (gate, keep) = (into_contiguous(gate), into_contiguous(keep));
    let ([batches, frames, channels], stride) = layout(&pre, &gate, drawn);
    let (draw_seed, relaxation) = draw_settings(drawn);
    let output = empty_like(&pre, [batches, frames, channels].into());
    let units = if drawn.is_some() {
        batches * channels
    } else {
        batches * frames * channels
    };
    let (count, dim) = launch_shape(&pre, units);
    let dtype = dtype_to_storage_type(pre.dtype);
    let client = pre.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        pre.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.into_tensor_arg(),
        keep.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        channels as u32,
        stride as u32,
        draw_seed,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        drawn.is_some(),
        dtype,
    );
    output
}

/// The gradients of `pre`, `bias` and `gate` (of its logits when `drawn`, the pull added) from
/// the output's (`keep` is a constant).
pub(super) fn backward(
    grad: CubeTensor,
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    keep: CubeTensor,
    drawn: Option<GateDraw>,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, pre, bias) = (into_contiguous(grad), into_contiguous(pre), into_contiguous(bias));
    let (gate, keep) = (into_contiguous(gate), into_contiguous(keep));
    let ([batches, frames, channels], stride) = layout(&pre, &gate, drawn);
    let (draw_seed, relaxation) = draw_settings(drawn);
    let grad_pre = empty_like(&pre, pre.shape());
    let (gate_shape, gate_elements) = (gate.shape(), gate.shape().num_elements());
    let bias_start = view_start_after(gate_elements);
    let grad_gate_and_bias = empty_like(&gate, [bias_start + 2 * channels].into());
    let (count, dim) = launch_shape(&pre, channels);
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
        keep.into_tensor_arg(),
        grad_pre.clone().into_tensor_arg(),
        grad_gate_and_bias.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        channels as u32,
        stride as u32,
        bias_start as u32,
        draw_seed,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        relaxation.pull,
        relaxation.pull_target,
        drawn.is_some(),
        dtype,
    );
    let grad_gate = view(grad_gate_and_bias.clone(), 0, gate_elements);
    let grad_gate = CubeBackend::float_reshape(grad_gate, gate_shape);
    (grad_pre, view(grad_gate_and_bias, bias_start, 2 * channels), grad_gate)
}
