//! What a Conformer module adds to the residual stream, after its last matrix product, fused:
//! `y = x + g · drop(pre + b)`, with `x` and `pre` `[batch, frames, d]`, the output bias `b`
//! `[d]`, the module gate `g` `[batch or 1, 1, 1]` and `drop` a hashed dropout whose multiplier
//! carries the module's weight (½ for the feed-forward modules) and `1 / keep`.
//!
//! Composed, this is a random draw for the mask and element-wise blocks forward, and backward
//! the bias's gradient and the gate's (sums over frames and columns) as reductions of their
//! own. Here: one kernel forward; backward one kernel in which a unit owns one column of one
//! batch and walks its frames (writing `dpre` and that column's two partial sums), and one
//! that finishes the sums. The model calls this only where the gate trains (L0's module gates);
//! everywhere else the output and its product go together (`projected_output`), whose backward
//! has no gate gradient to sum. With `k` the mask's factor (multiplier or 0):
//! - dx = dy (the residual's gradient passes through; no kernel),
//! - dpre = dy · g · k, db = Σ_(batch, frames) dpre,
//! - dg = Σ_(frames, columns) dy · k · (pre + b) (over the batch too when `g` is shared).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::hashed_dropout::{HashedDropout, hashed_index_count};
use super::kept::kept;
use super::launch::{empty_like, launch_shape};

#[cube(launch)]
fn forward_kernel<F: Float>(
    residual: &Tensor<F>,
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    output: &mut Tensor<F>,
    elements: u32,
    width: u32,
    frames: u32,
    gate_batch_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    #[define(F)] _dtype: ElemType,
) {
    let i = ABSOLUTE_POS;
    if i >= elements as usize {
        terminate!();
    }
    let column = i % width as usize;
    let batch = i / (width as usize * frames as usize);
    let k = kept::<F>(i as u32, seed, threshold, F::cast_from(multiplier));
    let g = gate[batch * gate_batch_stride as usize];
    output[i] = residual[i] + g * k * (pre[i] + bias[column]);
}

/// One unit per (batch, column): `dpre` down the column's frames, and the column's share of
/// the bias's and the gate's gradients (`[batch, width]` each, finished by `finish_kernel`).
#[cube(launch)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    pre: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    grad_pre: &mut Tensor<F>,
    bias_parts: &mut Tensor<F>,
    gate_parts: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    width: u32,
    gate_batch_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as u32;
    if unit >= batches * width {
        terminate!();
    }
    let column = unit % width;
    let batch = unit / width;
    let g = gate[(batch * gate_batch_stride) as usize];
    let b = bias[column as usize];
    let multiplier = F::cast_from(multiplier);
    let mut sum_bias = F::new(0.0);
    let mut sum_gate = F::new(0.0);
    for frame in 0..frames {
        let at = (batch * frames + frame) * width + column;
        let k = kept::<F>(at, seed, threshold, multiplier);
        let i = at as usize;
        let dy = grad[i];
        let dpre = dy * g * k;
        grad_pre[i] = dpre;
        sum_bias += dpre;
        sum_gate += dy * k * (pre[i] + b);
    }
    bias_parts[unit as usize] = sum_bias;
    gate_parts[unit as usize] = sum_gate;
}

/// Units `0..width` sum the bias's parts over the batch; units `width..` the gate's over the
/// columns of their batch (of every batch when the gate is shared).
#[cube(launch)]
fn finish_kernel<F: Float>(
    bias_parts: &Tensor<F>,
    gate_parts: &Tensor<F>,
    grad_bias: &mut Tensor<F>,
    grad_gate: &mut Tensor<F>,
    batches: u32,
    width: u32,
    gates: u32,
    rows_per_gate: u32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as u32;
    if unit >= width + gates {
        terminate!();
    }
    let mut sum = F::new(0.0);
    if unit < width {
        for batch in 0..batches {
            sum += bias_parts[(batch * width + unit) as usize];
        }
        grad_bias[unit as usize] = sum;
    } else {
        // A gate sums `rows_per_gate` rows of parts: its own batch's, or every batch's when
        // the batch shares one gate.
        let gate = unit - width;
        let first = gate * rows_per_gate * width;
        for at in first..first + rows_per_gate * width {
            sum += gate_parts[at as usize];
        }
        grad_gate[gate as usize] = sum;
    }
}

/// `[batch, frames, width]` of `pre`, and the gate's batch stride (0: one gate for the batch).
fn layout(pre: &CubeTensor, gate: &CubeTensor) -> ([usize; 3], usize) {
    let [batches, frames, width] = pre.shape().dims::<3>();
    let shared = gate.shape()[0] == 1;
    ([batches, frames, width], if shared { 0 } else { 1 })
}

/// `residual + gate · drop(pre + bias)`.
pub(super) fn forward(
    residual: CubeTensor,
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    dropout: HashedDropout,
) -> CubeTensor {
    let (residual, pre) = (into_contiguous(residual), into_contiguous(pre));
    let (bias, gate) = (into_contiguous(bias), into_contiguous(gate));
    let ([_, frames, width], stride) = layout(&pre, &gate);
    let elements = pre.shape().num_elements();
    let output = empty_like(&pre, pre.shape());
    let (count, dim) = launch_shape(&pre, elements);
    let dtype = dtype_to_storage_type(pre.dtype);
    let client = pre.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        residual.into_tensor_arg(),
        pre.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        hashed_index_count(elements),
        width as u32,
        frames as u32,
        stride as u32,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        dtype,
    );
    output
}

/// The gradients of `pre`, `bias` and `gate` from the output's (the residual's is the output's).
pub(super) fn backward(
    grad: CubeTensor,
    pre: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    dropout: HashedDropout,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, pre) = (into_contiguous(grad), into_contiguous(pre));
    let (bias, gate) = (into_contiguous(bias), into_contiguous(gate));
    let ([batches, frames, width], stride) = layout(&pre, &gate);
    let grad_pre = empty_like(&pre, pre.shape());
    let bias_parts = empty_like(&pre, [batches, width].into());
    let gate_parts = empty_like(&pre, [batches, width].into());
    let (count, dim) = launch_shape(&pre, batches * width);
    let dtype = dtype_to_storage_type(pre.dtype);
    let client = pre.client.clone();
    backward_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        pre.into_tensor_arg(),
        bias.clone().into_tensor_arg(),
        gate.clone().into_tensor_arg(),
        grad_pre.clone().into_tensor_arg(),
        bias_parts.clone().into_tensor_arg(),
        gate_parts.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        width as u32,
        stride as u32,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        dtype,
    );
    let grad_bias = empty_like(&bias, bias.shape());
    let grad_gate = empty_like(&gate, gate.shape());
    let gates = gate.shape().num_elements();
    let (count, dim) = launch_shape(&grad_pre, width + gates);
    finish_kernel::launch(
        &client,
        count,
        dim,
        bias_parts.into_tensor_arg(),
        gate_parts.into_tensor_arg(),
        grad_bias.clone().into_tensor_arg(),
        grad_gate.clone().into_tensor_arg(),
        batches as u32,
        width as u32,
        gates as u32,
        (batches / gates) as u32,
        dtype,
    );
    (grad_pre, grad_bias, grad_gate)
}
