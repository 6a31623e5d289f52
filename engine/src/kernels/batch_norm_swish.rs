//! The convolution module's BatchNorm (training: the batch's own statistics) and Swish, fused.
//! The input is the depthwise convolution's output in the module's layout, channels last
//! (`[batch, frames, channels]`, `depthwise_conv.rs`); BatchNorm normalises each channel over
//! batches and frames (padded frames included, as burn's does on `[batch, channels, frames]`).
//!
//! Forward two kernels: the channels' moments (one unit per channel: the mean, then the biased
//! variance around it; also what the running statistics are updated from), then one
//! element-wise kernel for `swish(x̂·γ + β)`. Backward two, each within the limit of 7
//! bindings: each channel's sums (one unit per channel), then the input's gradient
//! (element-wise); γ's and β's gradients are two of the sums, laid out so that they are views.
//! (One unit per channel could also write the input's gradient, one kernel in all, but on a GPU
//! those few units walking every row again would cost more than the dispatch they save.)
//! With x̂ = (x − mean)·r, r = 1/√(var + ε), z = x̂·γ + β, dz = dy·swish′(z) and N values per
//! channel:
//! - dβ = Σ dz, dγ = Σ dz·x̂,
//! - dx = r·γ·(dz − dβ/N − x̂·dγ/N).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::sigmoid;
use super::flat_pack::{view, view_start_after};
use super::launch::{empty_like, launch_shape};

#[cube(launch)]
fn moments_kernel<F: Float>(
    input: &Tensor<F>,
    mean: &mut Tensor<F>,
    variance: &mut Tensor<F>,
    rows: u32,
    channels: u32,
    #[define(F)] _dtype: ElemType,
) {
    let channel = ABSOLUTE_POS as usize;
    if channel >= channels as usize {
        terminate!();
    }
    let (rows, channels) = (rows as usize, channels as usize);
    let mut sum = F::new(0.0);
    for row in 0..rows {
        sum += input[row * channels + channel];
    }
    let mu = sum / F::cast_from(rows as u32);
    let mut squares = F::new(0.0);
    for row in 0..rows {
        let centred = input[row * channels + channel] - mu;
        squares += centred * centred;
    }
    mean[channel] = mu;
    variance[channel] = squares / F::cast_from(rows as u32);
}

#[cube(launch)]
fn forward_kernel<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    mean: &Tensor<F>,
    variance: &Tensor<F>,
    output: &mut Tensor<F>,
    elements: u32,
    channels: u32,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let channel = at % channels as usize;
    let inverse_std = F::new(1.0) / (variance[channel] + F::cast_from(epsilon)).sqrt();
    let z = (input[at] - mean[channel]) * inverse_std * gamma[channel] + beta[channel];
    output[at] = z * sigmoid::<F>(z);
}

/// swish′(z)·dy at one value, with z = x̂·γ + β.
#[cube]
fn swish_grad<F: Float>(dy: F, z: F) -> F {
    let s = sigmoid::<F>(z);
    dy * s * (F::new(1.0) + z * (F::new(1.0) - s))
}

/// Per channel, four terms: mean, 1/√(var + ε), Σ dz (dβ) and Σ dz·x̂ (dγ), each term's
/// channels a block of `block` elements (a multiple of 64, so that dβ and dγ are views).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn channel_terms_kernel<F: Float>(
    grad: &Tensor<F>,
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    mean: &Tensor<F>,
    variance: &Tensor<F>,
    terms: &mut Tensor<F>,
    rows: u32,
    channels: u32,
    block: u32,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let channel = ABSOLUTE_POS as usize;
    if channel >= channels as usize {
        terminate!();
    }
    let channels = channels as usize;
    let (g, b, mu) = (gamma[channel], beta[channel], mean[channel]);
    let inverse_std = F::new(1.0) / (variance[channel] + F::cast_from(epsilon)).sqrt();
    let mut sum_dz = F::new(0.0);
    let mut sum_dz_normalised = F::new(0.0);
    for row in 0..rows as usize {
        let at = row * channels + channel;
        let normalised = (input[at] - mu) * inverse_std;
        let dz = swish_grad::<F>(grad[at], normalised * g + b);
        sum_dz += dz;
        sum_dz_normalised += dz * normalised;
    }
    let block = block as usize;
    terms[channel] = mu;
    terms[block + channel] = inverse_std;
    terms[2 * block + channel] = sum_dz;
    terms[3 * block + channel] = sum_dz_normalised;
}

#[cube(launch)]
fn input_grad_kernel<F: Float>(
    grad: &Tensor<F>,
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    terms: &Tensor<F>,
    grad_input: &mut Tensor<F>,
    elements: u32,
    channels: u32,
    block: u32,
    count: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let (channel, block) = (at % channels as usize, block as usize);
    let (mu, inverse_std) = (terms[channel], terms[block + channel]);
    let n = F::cast_from(count);
    let (mean_dz, mean_dz_normalised) = (terms[2 * block + channel] / n, terms[3 * block + channel] / n);
    let g = gamma[channel];
    let normalised = (input[at] - mu) * inverse_std;
    let dz = swish_grad::<F>(grad[at], normalised * g + beta[channel]);
    grad_input[at] = inverse_std * g * (dz - mean_dz - normalised * mean_dz_normalised);
}

/// Rows (batch × frames) and channels of `[batch, frames, channels]`.
fn dims(input: &CubeTensor) -> (usize, usize) {
    let [batches, frames, channels] = input.shape().dims::<3>();
    (batches * frames, channels)
}

/// Each channel's mean and biased variance over batches and frames.
pub(super) fn moments(input: CubeTensor) -> (CubeTensor, CubeTensor) {
    let input = into_contiguous(input);
    let (rows, channels) = dims(&input);
    let mean = empty_like(&input, [channels].into());
    let variance = empty_like(&input, [channels].into());
    let (count, dim) = launch_shape(&input, channels);
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    moments_kernel::launch(
        &client,
        count,
        dim,
        input.into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        variance.clone().into_tensor_arg(),
        rows as u32,
        channels as u32,
        dtype,
    );
    (mean, variance)
}

/// `swish(BatchNorm(input))` with the given moments.
pub(super) fn forward(
    input: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    mean: CubeTensor,
    variance: CubeTensor,
    epsilon: f32,
) -> CubeTensor {
    let (input, gamma, beta) = (into_contiguous(input), into_contiguous(gamma), into_contiguous(beta));
    let (mean, variance) = (into_contiguous(mean), into_contiguous(variance));
    let (_, channels) = dims(&input);
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
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        mean.into_tensor_arg(),
        variance.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        elements as u32,
        channels as u32,
        epsilon,
        dtype,
    );
    output
}

/// The gradients of the input, γ and β from the output's (the moments' dependence on the input
/// is in the formula: they are not differentiated separately).
pub(super) fn backward(
    grad: CubeTensor,
    input: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    mean: CubeTensor,
    variance: CubeTensor,
    epsilon: f32,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, input, gamma) = (into_contiguous(grad), into_contiguous(input), into_contiguous(gamma));
    let (beta, mean, variance) = (into_contiguous(beta), into_contiguous(mean), into_contiguous(variance));
    let (rows, channels) = dims(&input);
    let elements = input.shape().num_elements();
    let block = view_start_after(channels);
    let terms = empty_like(&input, [4 * block].into());
    let grad_input = empty_like(&input, input.shape());
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    let (count, dim) = launch_shape(&input, channels);
    channel_terms_kernel::launch(
        &client,
        count,
        dim,
        grad.clone().into_tensor_arg(),
        input.clone().into_tensor_arg(),
        gamma.clone().into_tensor_arg(),
        beta.clone().into_tensor_arg(),
        mean.into_tensor_arg(),
        variance.into_tensor_arg(),
        terms.clone().into_tensor_arg(),
        rows as u32,
        channels as u32,
        block as u32,
        epsilon,
        dtype,
    );
    let (count, dim) = launch_shape(&input, elements);
    input_grad_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        input.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        terms.clone().into_tensor_arg(),
        grad_input.clone().into_tensor_arg(),
        elements as u32,
        channels as u32,
        block as u32,
        rows as u32,
        dtype,
    );
    let grad_gamma = view(terms.clone(), 3 * block, channels);
    let grad_beta = view(terms, 2 * block, channels);
    (grad_input, grad_gamma, grad_beta)
}
