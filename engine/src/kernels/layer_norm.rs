//! LayerNorm over the last axis, fused: one kernel forward, one backward. In the forward pass
//! one unit handles one row (`d_model` values: 144 for `tiny`), computing its mean and variance
//! in two passes over it, as the composed reference does, and keeps each row's mean and
//! 1/√(var + ε) for the backward pass. That one kernel has two kinds of unit: one per row for
//! the input's gradient, then one per column for γ's and β's, which read the kept statistics
//! rather than wait for the rows' units to compute them.
//!
//! With x̂ = (x − mean)·r, r = 1/√(var + ε), g = dy·γ and n the row's width (the mean over a row
//! written ⟨·⟩):
//! - dx = r·(g − ⟨g⟩ − x̂·⟨g·x̂⟩),
//! - dγ = Σ_rows dy·x̂, dβ = Σ_rows dy.
//!
//! A LayerNorm's input is also its module's residual, whose gradient is registered first (the
//! module's output comes later in the forward pass): the backward kernel adds it to dx as it
//! writes it, where burn's autodiff would add the two with a kernel of its own. To keep to 7
//! bindings, dγ and dβ are written into one buffer and handed out as two views of it.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::flat_pack::{view, view_start_after};
use super::launch::{empty_like, launch_shape};

/// The mean of row `start..start + width` of `input`.
#[cube]
fn row_mean<F: Float>(input: &Tensor<F>, start: usize, width: usize) -> F {
    let mut sum = F::new(0.0);
    for j in 0..width {
        sum += input[start + j];
    }
    sum / F::cast_from(width as u32)
}

/// 1/√(var + ε) of the same row, its biased variance taken around `mean`.
#[cube]
fn row_inverse_std<F: Float>(input: &Tensor<F>, start: usize, width: usize, mean: F, epsilon: f32) -> F {
    let mut squares = F::new(0.0);
    for j in 0..width {
        let centred = input[start + j] - mean;
        squares += centred * centred;
    }
    F::new(1.0) / (squares / F::cast_from(width as u32) + F::cast_from(epsilon)).sqrt()
}

/// The normalised rows, and each row's mean and 1/√(var + ε) into `statistics` (two per row).
#[cube(launch)]
fn forward_kernel<F: Float>(
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    output: &mut Tensor<F>,
    statistics: &mut Tensor<F>,
    rows: u32,
    width: u32,
    epsilon: f32,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS as usize;
    if row >= rows as usize {
        terminate!();
    }
    let width = width as usize;
    let start = row * width;
    let mean = row_mean::<F>(input, start, width);
    let inverse_std = row_inverse_std::<F>(input, start, width, mean, epsilon);
    for j in 0..width {
        output[start + j] = (input[start + j] - mean) * inverse_std * gamma[j] + beta[j];
    }
    statistics[2 * row] = mean;
    statistics[2 * row + 1] = inverse_std;
}

/// Units `0..rows`: dx of their row, plus `incoming` when `accumulate`. Units
/// `rows..rows + width`: dγ (at the column) and dβ (at `beta_start` + the column) of their
/// column, summed over the rows. Both read the statistics the forward pass kept.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    input: &Tensor<F>,
    gamma: &Tensor<F>,
    statistics: &Tensor<F>,
    incoming: &Tensor<F>,
    grad_input: &mut Tensor<F>,
    grad_parameters: &mut Tensor<F>,
    rows: u32,
    width: u32,
    beta_start: u32,
    #[comptime] accumulate: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    let (rows, width) = (rows as usize, width as usize);
    if unit >= rows + width {
        terminate!();
    }
    if unit < rows {
        let start = unit * width;
        let (mean, inverse_std) = (statistics[2 * unit], statistics[2 * unit + 1]);
        let mut sum_g = F::new(0.0);
        let mut sum_g_normalised = F::new(0.0);
        for j in 0..width {
            let g = grad[start + j] * gamma[j];
            sum_g += g;
            sum_g_normalised += g * (input[start + j] - mean) * inverse_std;
        }
        let n = F::cast_from(width as u32);
        let mean_g = sum_g / n;
        let mean_g_normalised = sum_g_normalised / n;
        for j in 0..width {
            let g = grad[start + j] * gamma[j];
            let normalised = (input[start + j] - mean) * inverse_std;
            let mut dx = inverse_std * (g - mean_g - normalised * mean_g_normalised);
            if accumulate {
                dx += incoming[start + j];
            }
            grad_input[start + j] = dx;
        }
    } else {
        let column = unit - rows;
        let mut sum_gamma = F::new(0.0);
        let mut sum_beta = F::new(0.0);
        for row in 0..rows {
            let at = row * width + column;
            let dy = grad[at];
            sum_gamma += dy * (input[at] - statistics[2 * row]) * statistics[2 * row + 1];
            sum_beta += dy;
        }
        grad_parameters[column] = sum_gamma;
        grad_parameters[beta_start as usize + column] = sum_beta;
    }
}

/// Rows and width of a tensor normalised over its last axis.
fn rows_and_width(shape: &Shape) -> (usize, usize) {
    let width = shape[shape.num_dims() - 1];
    (shape.num_elements() / width.max(1), width)
}

/// LayerNorm of `input`'s rows, and the statistics `[rows, 2]` its backward pass reads.
pub(super) fn forward(
    input: CubeTensor,
    gamma: CubeTensor,
    beta: CubeTensor,
    epsilon: f32,
) -> (CubeTensor, CubeTensor) {
    let (input, gamma, beta) = (into_contiguous(input), into_contiguous(gamma), into_contiguous(beta));
    let (rows, width) = rows_and_width(&input.shape());
    let output = empty_like(&input, input.shape());
    let statistics = empty_like(&input, Shape::new([rows, 2]));
    let (count, dim) = launch_shape(&input, rows);
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        input.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        statistics.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        epsilon,
        dtype,
    );
    (output, statistics)
}

/// The gradients of the input, γ and β from the output's, with the forward pass's statistics;
/// the input's with `incoming` (its gradient so far) added.
pub(super) fn backward(
    grad: CubeTensor,
    input: CubeTensor,
    gamma: CubeTensor,
    statistics: CubeTensor,
    incoming: Option<CubeTensor>,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, input, gamma) = (into_contiguous(grad), into_contiguous(input), into_contiguous(gamma));
    let statistics = into_contiguous(statistics);
    let (rows, width) = rows_and_width(&input.shape());
    let accumulate = incoming.is_some();
    // Without a gradient to add, the kernel reads none: `grad` stands in for the binding.
    let incoming = incoming.map_or_else(|| grad.clone(), into_contiguous);
    let grad_input = empty_like(&input, input.shape());
    // dβ starts at a multiple of 64 elements, so that both are views (WebGPU's binding offsets).
    let beta_start = view_start_after(width);
    let grad_parameters = empty_like(&gamma, Shape::new([beta_start + width]));
    let dtype = dtype_to_storage_type(input.dtype);
    let client = input.client.clone();
    let (count, dim) = launch_shape(&input, rows + width);
    backward_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        input.into_tensor_arg(),
        gamma.into_tensor_arg(),
        statistics.into_tensor_arg(),
        incoming.into_tensor_arg(),
        grad_input.clone().into_tensor_arg(),
        grad_parameters.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        beta_start as u32,
        accumulate,
        dtype,
    );
    let grad_gamma = view(grad_parameters.clone(), 0, width);
    (grad_input, grad_gamma, view(grad_parameters, beta_start, width))
}
