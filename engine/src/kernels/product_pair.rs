//! Two matrix products in one dispatch, for a layer's backward pass: the input's gradient
//! `dx = dy · Wᵀ` and the weight's `dW = xᵀ · dy` do not depend on each other, and burn's
//! autodiff launches a product for each (16 of a `tiny` block's 24 products were backward ones).
//! Here the units of one launch are split between the two: the first ones compute blocks of the
//! first product, the rest blocks of the second.
//!
//! For a module's last product (`module_output_backward`) the same dispatch also does the module
//! output's backward pass: it reads `dy` through the module gate and the hashed dropout
//! (`dpre = dy · g · k`, never written), and the weight's product has one more row of ones, whose
//! products are the bias's gradient `Σ dpre`. That leaves out the module output's own backward
//! kernel and `dpre`'s buffer.
//!
//! Each product reads its operands through their strides, so a transposed operand is a view
//! (`swap_dims`), never a copy. A unit computes a 4 × 4 block of its product in registers,
//! walking the shared axis from global memory: no workgroup memory and no barriers. That is
//! not a tuned matrix product, but these are small (d_model 144), and measured on SwiftShader the
//! step ran about twice as fast as with burn's matmul for these two products (whose tiled kernel
//! synchronises its workgroup at every step of the shared axis, which an emulated GPU pays
//! dearly for); a first version here with 16 × 16 tiles in workgroup memory was ~25 % slower
//! than burn's there. On a real GPU the dispatch is what the step pays for.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::flat_pack::{view, view_start_after};
use super::hashed_dropout::{HashedDropout, hashed_index_count};
use super::kept::kept;
use super::launch::{empty_like, launch_shape, reshape};

/// A unit's block of outputs: `BLOCK` × `BLOCK`.
pub(super) const BLOCK: usize = 4;

/// The factor a module output's gradient is read through at row `row` (`[rows, width]`,
/// contiguous) for its backward pass: the module gate `g` of the row's utterance times the
/// dropout's multiplier; the element's own keep decision is hashed where it is read
/// (`dpre[at] = dy[at] · kept(at, g · multiplier)`, `module_output.rs`).
#[cube]
fn row_factor<F: Float>(gate: &Tensor<F>, row: usize, frames: usize, gate_stride: usize, multiplier: F) -> F {
    gate[(row / frames) * gate_stride] * multiplier
}

/// Where block `block` of an `[rows, cols]` product starts: (first row, first column), the
/// blocks numbered along the rows of blocks.
#[cube]
#[allow(clippy::manual_div_ceil)] // kernel code: written as the shader computes it
pub(super) fn block_origin(block: usize, cols: usize) -> (usize, usize) {
    let block_cols = (cols + BLOCK - 1) / BLOCK;
    ((block / block_cols) * BLOCK, (block % block_cols) * BLOCK)
}

/// `Σ_k a[m, k] · b[k, n]` for the `BLOCK` × `BLOCK` block `block` of `a · b` (`a`
/// `[rows, depth]` and `b` `[depth, cols]` read through their strides), row by row. Past the
/// edges a unit reads the last row or column again (so the loop has no branch); its sums there
/// are not to be written.
///
/// For a module output's backward pass: with `a_scaled` (`b_scaled`) `a` (`b`) is the output's
/// gradient `[rows, width]`, read through [`row_factor`] and the dropout; with `ones_row`, `a` has one more row, of ones, after
/// its own, whose products are the column sums of `b` (the output bias's gradient).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn block_sums<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    block: usize,
    gate: &Tensor<F>,
    scale: &ScaleArgs,
    #[comptime] a_scaled: bool,
    #[comptime] b_scaled: bool,
    #[comptime] ones_row: bool,
) -> Array<F> {
    let (own_rows, depth, cols) = (a.shape(0), a.shape(1), b.shape(1));
    let (a_row_stride, a_depth_stride) = (a.stride(0), a.stride(1));
    let (b_depth_stride, b_col_stride) = (b.stride(0), b.stride(1));
    let multiplier = F::cast_from(scale.multiplier);
    let (frames, gate_stride) = (scale.frames as usize, scale.gate_stride as usize);
    let (first_row, first_col) = block_origin(block, cols);
    let mut a_rows = Array::<usize>::new(BLOCK);
    // `a`'s value is `read · own + one`: (1, 0) on its own rows, (0, 1) on the row of ones.
    let mut own = Array::<F>::new(BLOCK);
    let mut one = Array::<F>::new(BLOCK);
    let mut b_cols = Array::<usize>::new(BLOCK);
    // A scaled `a` is the gradient `[rows, width]`: each of the block's rows has one factor.
    let mut a_factors = Array::<F>::new(BLOCK);
    #[unroll]
    for i in 0..BLOCK {
        let mut row = first_row + i;
        own[i] = F::new(1.0);
        one[i] = F::new(0.0);
        if row >= own_rows {
            if ones_row && row == own_rows {
                own[i] = F::new(0.0);
                one[i] = F::new(1.0);
            }
            row = own_rows - 1;
        }
        a_rows[i] = row * a_row_stride;
        if a_scaled {
            a_factors[i] = row_factor::<F>(gate, row, frames, gate_stride, multiplier);
        }
        let mut col = first_col + i;
        if col >= cols {
            col = cols - 1;
        }
        b_cols[i] = col * b_col_stride;
    }
    let mut sums = Array::<F>::new(BLOCK * BLOCK);
    #[unroll]
    for i in 0..BLOCK * BLOCK {
        sums[i] = F::new(0.0);
    }
    let mut a_values = Array::<F>::new(BLOCK);
    for k in 0..depth {
        let (a_k, b_k) = (k * a_depth_stride, k * b_depth_stride);
        #[unroll]
        for i in 0..BLOCK {
            let at = a_rows[i] + a_k;
            let mut value = a[at];
            if a_scaled {
                value *= kept::<F>(at as u32, scale.seed, scale.threshold, a_factors[i]);
            }
            if ones_row {
                value = value * own[i] + one[i];
            }
            a_values[i] = value;
        }
        // A scaled `b` is the gradient `[rows, width]` and `k` its row: one factor for the four.
        let mut b_factor = F::new(1.0);
        if b_scaled {
            b_factor = row_factor::<F>(gate, k, frames, gate_stride, multiplier);
        }
        #[unroll]
        for j in 0..BLOCK {
            let at = b_k + b_cols[j];
            let mut b_value = b[at];
            if b_scaled {
                b_value *= kept::<F>(at as u32, scale.seed, scale.threshold, b_factor);
            }
            #[unroll]
            for i in 0..BLOCK {
                sums[i * BLOCK + j] += a_values[i] * b_value;
            }
        }
    }
    sums
}

/// [`block_sums`] written into `out` (`[rows, cols]`, contiguous) inside its edges; with
/// `ones_row`, the row of ones' sums at `ones_at` of `out`.
#[cube]
#[allow(clippy::too_many_arguments)]
fn block_product<F: Float>(
    a: &Tensor<F>,
    b: &Tensor<F>,
    out: &mut Tensor<F>,
    block: usize,
    gate: &Tensor<F>,
    scale: &ScaleArgs,
    ones_at: usize,
    #[comptime] a_scaled: bool,
    #[comptime] b_scaled: bool,
    #[comptime] ones_row: bool,
) {
    let sums = block_sums::<F>(a, b, block, gate, scale, a_scaled, b_scaled, ones_row);
    let (rows, cols) = (a.shape(0), b.shape(1));
    let (first_row, first_col) = block_origin(block, cols);
    #[unroll]
    for i in 0..BLOCK {
        #[unroll]
        for j in 0..BLOCK {
            let (row, col) = (first_row + i, first_col + j);
            if row < rows && col < cols {
                out[row * cols + col] = sums[i * BLOCK + j];
            }
            if ones_row && row == rows && col < cols {
                out[ones_at + col] = sums[i * BLOCK + j];
            }
        }
    }
}

/// A module's output with its last matrix product, forward: `output = residual + g ·
/// k · (input · weight + bias)` (`module_output.rs`), one unit per block of the product, the
/// product never written.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn projected_output_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    residual: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    output: &mut Tensor<F>,
    blocks: u32,
    scale: ScaleArgs,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS;
    if unit >= blocks as usize {
        terminate!();
    }
    let sums = block_sums::<F>(input, weight, unit, gate, &scale, false, false, false);
    let (rows, cols) = (input.shape(0), weight.shape(1));
    let (first_row, first_col) = block_origin(unit, cols);
    let frames = scale.frames as usize;
    let multiplier = F::cast_from(scale.multiplier);
    #[unroll]
    for i in 0..BLOCK {
        let row = first_row + i;
        let g = gate[(row / frames) * scale.gate_stride as usize];
        #[unroll]
        for j in 0..BLOCK {
            let col = first_col + j;
            if row < rows && col < cols {
                let at = row * cols + col;
                let k = kept::<F>(at as u32, scale.seed, scale.threshold, multiplier);
                output[at] = residual[at] + g * k * (sums[i * BLOCK + j] + bias[col]);
            }
        }
    }
}

/// The module output's settings for reading its gradient (unread in a plain pair).
#[derive(CubeType, CubeLaunch)]
pub(super) struct ScaleArgs {
    frames: u32,
    gate_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
}

/// Units `0 .. first_blocks` compute blocks of `first_out = a_0 · b_0`, the next
/// `second_blocks` blocks of `second_out = a_1 · b_1`. With `module_output`, `a_0` and `b_1` are
/// a module output's gradient read through its gate and dropout, and `a_1` has a row of ones
/// (see [`block_product`]).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn product_pair_kernel<F: Float>(
    a_0: &Tensor<F>,
    b_0: &Tensor<F>,
    a_1: &Tensor<F>,
    b_1: &Tensor<F>,
    first_out: &mut Tensor<F>,
    second_out: &mut Tensor<F>,
    gate: &Tensor<F>,
    first_blocks: u32,
    second_blocks: u32,
    ones_at: u32,
    scale: ScaleArgs,
    #[comptime] module_output: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS;
    let (first_blocks, second_blocks) = (first_blocks as usize, second_blocks as usize);
    if unit < first_blocks {
        block_product::<F>(a_0, b_0, first_out, unit, gate, &scale, 0, module_output, false, false);
    } else if unit < first_blocks + second_blocks {
        block_product::<F>(
            a_1,
            b_1,
            second_out,
            unit - first_blocks,
            gate,
            &scale,
            ones_at as usize,
            false,
            module_output,
            module_output,
        );
    }
}

/// The blocks of an `[rows, cols]` product.
pub(super) fn block_count([rows, cols]: [usize; 2]) -> usize {
    rows.div_ceil(BLOCK) * cols.div_ceil(BLOCK)
}

/// `[rows, depth] · [depth, cols]`'s operand shapes, checked.
fn product_shape(a: &CubeTensor, b: &CubeTensor) -> [usize; 2] {
    let [rows, depth] = a.shape().dims::<2>();
    let [depth_b, cols] = b.shape().dims::<2>();
    assert_eq!(depth, depth_b, "a product's operands share their inner size");
    [rows, cols]
}

/// `(a_0 · b_0, a_1 · b_1)` for two-dimensional operands of any strides, as one dispatch; the
/// results are contiguous.
pub(super) fn product_pair(first: [CubeTensor; 2], second: [CubeTensor; 2]) -> (CubeTensor, CubeTensor) {
    let second_shape = product_shape(&second[0], &second[1]);
    let second_out = empty_like(&second[0], Shape::new(second_shape));
    let unread_gate = empty_like(&second[0], Shape::new([1]));
    let scale = ScaleArgsLaunch::new(0, 0, 0, 0, 0.0);
    let first_out = launch(
        first,
        second,
        second_out.clone(),
        second_shape,
        unread_gate,
        scale,
        None,
    );
    (first_out, second_out)
}

/// Launches the pair: `first`'s product into a new tensor (returned), `second`'s into
/// `second_out` as `second_shape` (with, when `ones_at` is given, `second`'s row of ones
/// after it: a module output's backward pass, `scale` and `gate` its settings).
fn launch(
    first: [CubeTensor; 2],
    second: [CubeTensor; 2],
    second_out: CubeTensor,
    second_shape: [usize; 2],
    gate: CubeTensor,
    scale: ScaleArgsLaunch,
    ones_at: Option<usize>,
) -> CubeTensor {
    let [a_0, b_0] = first;
    let [a_1, b_1] = second;
    let first_shape = product_shape(&a_0, &b_0);
    let first_out = empty_like(&a_0, Shape::new(first_shape));
    // The row of ones is one more row of blocks' worth of outputs.
    let ones_rows = usize::from(ones_at.is_some());
    let (first_blocks, second_blocks) = (
        block_count(first_shape),
        block_count([second_shape[0] + ones_rows, second_shape[1]]),
    );
    let (count, dim) = launch_shape(&first_out, first_blocks + second_blocks);
    let dtype = dtype_to_storage_type(a_0.dtype);
    product_pair_kernel::launch(
        &a_0.client.clone(),
        count,
        dim,
        a_0.into_tensor_arg(),
        b_0.into_tensor_arg(),
        a_1.into_tensor_arg(),
        b_1.into_tensor_arg(),
        first_out.clone().into_tensor_arg(),
        second_out.into_tensor_arg(),
        gate.into_tensor_arg(),
        first_blocks as u32,
        second_blocks as u32,
        ones_at.unwrap_or(0) as u32,
        scale,
        ones_at.is_some(),
        dtype,
    );
    first_out
}

/// The settings a module output's gradient is read with: the utterances' `frames`, the gate's
/// batch stride (0: one gate for the batch) and the dropout.
fn scale_args(frames: usize, gate: &CubeTensor, dropout: HashedDropout) -> ScaleArgsLaunch {
    ScaleArgsLaunch::new(
        frames as u32,
        u32::from(gate.shape()[0] != 1),
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
    )
}

/// A module output's backward pass through its last matrix product: from the gradient `grad`
/// `[b, s, o]` of `residual + g · drop(input · weight + bias)`, with `input` `[b, s, d]`,
/// `weight` `[d, o]` and the module gate `gate` `[b or 1, 1, 1]` (not trained), the input's,
/// the weight's and the bias's gradients in one dispatch; `dpre = dy · g · k` is never written.
pub(super) fn module_output_backward(
    grad: CubeTensor,
    input: CubeTensor,
    weight: CubeTensor,
    gate: CubeTensor,
    dropout: HashedDropout,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let (grad, input, gate) = (into_contiguous(grad), into_contiguous(input), into_contiguous(gate));
    let [batches, frames, width] = grad.shape().dims::<3>();
    let d = input.shape()[2];
    let rows = batches * frames;
    hashed_index_count(rows * width);
    let grad_rows = reshape(grad, [rows, width]);
    let input_rows = reshape(input, [rows, d]);
    // The weight's gradient `[d, o]`, then the bias's where a view may start.
    let bias_at = view_start_after(d * width);
    let weight_and_bias = empty_like(&grad_rows, Shape::new([bias_at + width]));
    let scale = scale_args(frames, &gate, dropout);
    let grad_input = launch(
        [grad_rows.clone(), transposed(weight)],
        [transposed(input_rows), grad_rows],
        weight_and_bias.clone(),
        [d, width],
        gate,
        scale,
        Some(bias_at),
    );
    (
        reshape(grad_input, [batches, frames, d]),
        reshape(view(weight_and_bias.clone(), 0, d * width), [d, width]),
        view(weight_and_bias, bias_at, width),
    )
}

/// A linear layer's backward pass from the output's gradient `grad` `[rows, o]`, its `input`
/// `[rows, d]` and `weight` `[d, o]`: the input's gradient `grad · weightᵀ` and the weight's
/// `inputᵀ · grad`, one dispatch.
pub(super) fn linear_backward(grad: CubeTensor, input: CubeTensor, weight: CubeTensor) -> (CubeTensor, CubeTensor) {
    product_pair([grad.clone(), transposed(weight)], [transposed(input), grad])
}

/// A two-dimensional tensor's transpose, as a view.
pub(super) fn transposed(tensor: CubeTensor) -> CubeTensor {
    CubeBackend::float_swap_dims(tensor, 0, 1)
}

/// `residual + gate · drop(input · weight + bias)` for `input` `[b, s, u]`, `weight` `[u, o]`,
/// `residual` `[b, s, o]`, `bias` `[o]` and `gate` `[b or 1, 1, 1]`: one dispatch.
pub(super) fn projected_output(
    residual: CubeTensor,
    input: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    dropout: HashedDropout,
) -> CubeTensor {
    let (residual, input) = (into_contiguous(residual), into_contiguous(input));
    let (bias, gate) = (into_contiguous(bias), into_contiguous(gate));
    let [batches, frames, width] = residual.shape().dims::<3>();
    let units = input.shape()[2];
    let rows = batches * frames;
    hashed_index_count(rows * width);
    let output = empty_like(&residual, residual.shape());
    let blocks = block_count([rows, width]);
    let (count, dim) = launch_shape(&output, blocks);
    let dtype = dtype_to_storage_type(residual.dtype);
    projected_output_kernel::launch(
        &residual.client.clone(),
        count,
        dim,
        reshape(input, [rows, units]).into_tensor_arg(),
        weight.into_tensor_arg(),
        residual.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.clone().into_tensor_arg(),
        output.clone().into_tensor_arg(),
        blocks as u32,
        scale_args(frames, &gate, dropout),
        dtype,
    );
    output
}
