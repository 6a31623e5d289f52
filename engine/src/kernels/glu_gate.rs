//! The convolution module's gated linear unit after its first matrix product, fused with the
//! product's bias, the pruning gate on the channels and the zeroing of padded frames:
//! `y = (a + b_a) · σ(g + b_g) · m · keep`, where `pre` `[batch, frames, 2c]` holds `a` in its
//! first `c` channels and `g` in the rest, `bias` is `[2c]`, `m` `[batch or 1, 1, c]` and `keep`
//! `[batch, frames]` is 1 on real frames and 0 on padding. Forward one element-wise kernel (no
//! slices of `pre`); backward two: one in which a unit owns a channel and walks its batches and
//! frames, writing both halves' gradients and summing the gate's, then the biases' gradient as
//! the column sums of `pre`'s (one kernel holding both would bind 8 buffers, over the limit in
//! `column_sums.rs`).
//!
//! With A = a + b_a, s = σ(g + b_g) and e = dy · m · keep:
//! - da = e · s, dg = e · A · s · (1 − s), db_a = Σ da, db_g = Σ dg (over batches and frames),
//! - dm = Σ_frames dy · keep · A · s (summed over the batch too when `m` is shared).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::sigmoid;
use super::column_sums::column_sums;
use super::launch::{empty_like, launch_shape};

#[cube(launch)]
fn forward_kernel<F: Float>(
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    keep: &Tensor<F>,
    output: &mut Tensor<F>,
    elements: u32,
    channels: u32,
    frames: u32,
    gate_batch_stride: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let channels = channels as usize;
    let channel = at % channels;
    let row = at / channels; // batch · frames + frame
    let batch = row / frames as usize;
    let a = pre[2 * row * channels + channel] + bias[channel];
    let g = pre[2 * row * channels + channels + channel] + bias[channels + channel];
    output[at] = a * sigmoid::<F>(g) * gate[batch * gate_batch_stride as usize + channel] * keep[row];
}

/// One unit per channel: both halves' gradients at every batch and frame, and the gate's per
/// batch (or summed over the batch when shared, `gate_batch_stride` 0).
#[cube(launch)]
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
    #[define(F)] _dtype: ElemType,
) {
    let channel = ABSOLUTE_POS as usize;
    if channel >= channels as usize {
        terminate!();
    }
    let (frames, channels, stride) = (frames as usize, channels as usize, gate_batch_stride as usize);
    let (bias_a, bias_g) = (bias[channel], bias[channels + channel]);
    let mut sum_gate = F::new(0.0);
    for batch in 0..batches as usize {
        let m = gate[batch * stride + channel];
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
            sum_gate_batch += dy_kept * a * s;
        }
        if stride != 0 {
            grad_gate[batch * channels + channel] = sum_gate_batch;
        }
        sum_gate += sum_gate_batch;
    }
    if stride == 0 {
        grad_gate[channel] = sum_gate;
    }
}

/// `[batch, frames, channels]` of the output, and the gate's batch stride (0: shared).
fn layout(pre: &CubeTensor, gate: &CubeTensor) -> ([usize; 3], usize) {
    let [batches, frames, both] = pre.shape().dims::<3>();
    let channels = both / 2;
    let shared = gate.shape()[0] == 1;
    ([batches, frames, channels], if shared { 0 } else { channels })
}

/// `(a + b_a) · σ(g + b_g) · gate · keep`.
pub(super) fn forward(pre: CubeTensor, bias: CubeTensor, gate: CubeTensor, keep: CubeTensor) -> CubeTensor {
    let (pre, bias) = (into_contiguous(pre), into_contiguous(bias));
    let (gate, keep) = (into_contiguous(gate), into_contiguous(keep));
    let ([batches, frames, channels], stride) = layout(&pre, &gate);
    let output = empty_like(&pre, [batches, frames, channels].into());
    let elements = batches * frames * channels;
    let (count, dim) = launch_shape(&pre, elements);
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
        elements as u32,
        channels as u32,
        frames as u32,
        stride as u32,
        dtype,
    );
    output
}

/// The gradients of `pre`, `bias` and `gate` from the output's (`keep` is a constant).
pub(super) fn backward(
    grad: CubeTensor,
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    keep: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, pre, bias) = (into_contiguous(grad), into_contiguous(pre), into_contiguous(bias));
    let (gate, keep) = (into_contiguous(gate), into_contiguous(keep));
    let ([batches, frames, channels], stride) = layout(&pre, &gate);
    let grad_pre = empty_like(&pre, pre.shape());
    let grad_gate = empty_like(&gate, gate.shape());
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
        grad_gate.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        channels as u32,
        stride as u32,
        dtype,
    );
    let grad_bias = column_sums(grad_pre.clone());
    (grad_pre, grad_bias, grad_gate)
}
