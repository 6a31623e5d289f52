//! The convolution module's depthwise convolution in the module's own layout, fused: channels
//! last, `[batch, frames, channels]`, with an odd number of taps `k` per channel and "same"
//! zero padding (`(k − 1)/2` frames each side), `y[t] = b + Σ_j w[j] · x[t + j − (k − 1)/2]`
//! per utterance and channel, as burn's `Conv1d` with `groups = channels` computes it on
//! `[batch, channels, frames]`. Working in the module's layout leaves out the two transposes
//! around the convolution (and their copies) and burn's convolution's own relayouts.
//!
//! Forward one element-wise kernel; backward one with two kinds of unit: one per (tap, channel)
//! walking every frame for `dw[j] = Σ dy[t] · x[t + j − (k − 1)/2]`, with one more row of units
//! for the bias, `db = Σ dy`; and one per element for the input's gradient (the taps read
//! backwards, `dx[t] = Σ_j w[j] · dy[t − j + (k − 1)/2]`).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{empty_like, launch_shape};

/// Σ_j w[j'] · values[t + j − half] over the taps inside the utterance, for the element at
/// `at` of `[batch, frames, channels]`: j' = j (the convolution) or taps − 1 − j (`flipped`:
/// the taps read backwards, which is the input's gradient, since taps − 1 = 2·half).
#[cube]
fn tap_sum<F: Float>(
    values: &Tensor<F>,
    weight: &Tensor<F>,
    at: usize,
    frames: usize,
    channels: usize,
    taps: usize,
    #[comptime] flipped: bool,
) -> F {
    let channel = at % channels;
    let row = at / channels;
    let frame = row % frames;
    let first = row - frame;
    let half = taps / 2;
    let mut sum = F::new(0.0);
    // Tap j reads frame `frame + j − half`, kept inside the utterance (unsigned: compare first).
    for j in 0..taps {
        let shifted = frame + j;
        if shifted >= half && shifted < frames + half {
            let tap = if flipped { taps - 1 - j } else { j };
            sum += weight[channel * taps + tap] * values[(first + shifted - half) * channels + channel];
        }
    }
    sum
}

#[cube(launch)]
fn forward_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    output: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    channels: u32,
    taps: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let (frames, channels, taps) = (frames as usize, channels as usize, taps as usize);
    output[at] = bias[at % channels] + tap_sum::<F>(input, weight, at, frames, channels, taps, false);
}

/// Units `0..(taps + 1) · channels`: `tap · channels + channel` for the taps' gradients,
/// `taps · channels + channel` for the bias's (adjacent units read adjacent channels of the same
/// frame), each walking every frame. Then one unit per element for the input's gradient. Both
/// kinds read only the output's gradient and the forward's operands, so one dispatch holds them.
#[cube(launch)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    input: &Tensor<F>,
    weight: &Tensor<F>,
    grad_input: &mut Tensor<F>,
    grad_weight: &mut Tensor<F>,
    grad_bias: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    channels: u32,
    taps: u32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    let (frames, channels, taps) = (frames as usize, channels as usize, taps as usize);
    let parameter_units = (taps + 1) * channels;
    if unit >= parameter_units + elements as usize {
        terminate!();
    }
    if unit < parameter_units {
        let channel = unit % channels;
        let tap = unit / channels;
        let half = taps / 2;
        let mut sum = F::new(0.0);
        for row in 0..elements as usize / channels {
            let dy = grad[row * channels + channel];
            if tap == taps {
                sum += dy;
            } else {
                let frame = row % frames;
                let shifted = frame + tap;
                if shifted >= half && shifted < frames + half {
                    sum += dy * input[(row - frame + shifted - half) * channels + channel];
                }
            }
        }
        if tap == taps {
            grad_bias[channel] = sum;
        } else {
            grad_weight[channel * taps + tap] = sum;
        }
    } else {
        let at = unit - parameter_units;
        grad_input[at] = tap_sum::<F>(grad, weight, at, frames, channels, taps, true);
    }
}

/// `[batch, frames, channels]` and the taps of `weight` `[channels, 1, taps]`.
fn layout(input: &CubeTensor, weight: &CubeTensor) -> ([usize; 3], usize) {
    (input.shape().dims::<3>(), weight.shape()[2])
}

/// The convolution of `input` `[batch, frames, channels]` with `weight` `[channels, 1, taps]`
/// plus `bias` `[channels]`.
pub(super) fn forward(input: CubeTensor, weight: CubeTensor, bias: CubeTensor) -> CubeTensor {
    let (input, weight, bias) = (into_contiguous(input), into_contiguous(weight), into_contiguous(bias));
    let ([_, frames, channels], taps) = layout(&input, &weight);
    let elements = input.shape().num_elements();
    let output = empty_like(&input, input.shape());
    let (count, dim) = launch_shape(&input, elements);
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        input.into_tensor_arg(),
        weight.into_tensor_arg(),
        bias.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        channels as u32,
        taps as u32,
        dtype,
    );
    output
}

/// The gradients of the input, the weight and the bias from the output's.
pub(super) fn backward(
    grad: CubeTensor,
    input: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, input, weight) = (into_contiguous(grad), into_contiguous(input), into_contiguous(weight));
    let ([_, frames, channels], taps) = layout(&input, &weight);
    let elements = input.shape().num_elements();
    let grad_input = empty_like(&input, input.shape());
    let grad_weight = empty_like(&weight, weight.shape());
    let grad_bias = empty_like(&weight, bias.shape());
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    let (count, dim) = launch_shape(&input, (taps + 1) * channels + elements);
    backward_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        input.into_tensor_arg(),
        weight.into_tensor_arg(),
        grad_input.clone().into_tensor_arg(),
        grad_weight.clone().into_tensor_arg(),
        grad_bias.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        channels as u32,
        taps as u32,
        dtype,
    );
    (grad_input, grad_weight, grad_bias)
}
