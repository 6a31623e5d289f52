//! The attention's two matrix products per head, read and written in the projections' own
//! layout `[b, s, h·w]` (head `h` in columns `h·w .. (h + 1)·w`), so no head is ever split out
//! into `[b, h, s, w]` or merged back:
//! - scores `S[b, h, i, j] = Σ_c q[b, i, h, c] · k[b, j, h, c]` (the pair-dots kernel),
//! - context `C[b, i, h, c] = Σ_j W[b, h, i, j] · v[b, j, h, c]` (the mix kernel).
//!
//! Their backward passes are the same two kernels: dq = mix(dS, k), dk = mixᵀ(dS, q) (the
//! weights read by column), dW = pair-dots(dC, v), dv = mixᵀ(W, dC).
//!
//! Composed, each product is a `swap_dims` per operand, copies to make them contiguous for the
//! matrix-product kernel, the product, and a copy to merge the heads back: a block's forward
//! and backward spent ~20 kernels here where these spend 6. Each unit computes one output
//! element with a plain loop (the widths are tens, the frames hundreds): the arithmetic is the
//! matrix products', without their tiling, which at these sizes matters less than the kernels
//! saved.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{empty_like, launch_shape};

/// `out[b, h, i, j] = Σ_c x[b, i, h, c] · y[b, j, h, c]`, one unit per output element.
#[cube(launch)]
fn pair_dots_kernel<F: Float>(
    x: &Tensor<F>,
    y: &Tensor<F>,
    out: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let (frames, heads, width) = (frames as usize, heads as usize, width as usize);
    let j = at % frames;
    let i = (at / frames) % frames;
    let head = (at / (frames * frames)) % heads;
    let batch = at / (frames * frames * heads);
    let row = heads * width;
    let x_start = (batch * frames + i) * row + head * width;
    let y_start = (batch * frames + j) * row + head * width;
    let mut sum = F::new(0.0);
    for c in 0..width {
        sum += x[x_start + c] * y[y_start + c];
    }
    out[at] = sum;
}

/// `out[b, t, h, c] = Σ_u A[b, h, t, u] · x[b, u, h, c]`, or with `A[b, h, u, t]` (the weights
/// read by column) when `row_stride` is 1 and `column_stride` the frames. One unit per output
/// element.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn mix_kernel<F: Float>(
    weights: &Tensor<F>,
    x: &Tensor<F>,
    out: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    row_stride: u32,
    column_stride: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let (frames, heads, width) = (frames as usize, heads as usize, width as usize);
    let c = at % width;
    let head = (at / width) % heads;
    let t = (at / (width * heads)) % frames;
    let batch = at / (width * heads * frames);
    let (row_stride, column_stride) = (row_stride as usize, column_stride as usize);
    let weights_start = (batch * heads + head) * frames * frames + t * row_stride;
    let row = heads * width;
    let x_start = batch * frames * row + head * width + c;
    let mut sum = F::new(0.0);
    for u in 0..frames {
        sum += weights[weights_start + u * column_stride] * x[x_start + u * row];
    }
    out[at] = sum;
}

/// `[b, s, h·w]` with `h` heads: `(b, s, w)`.
fn head_dims(x: &CubeTensor, heads: usize) -> (usize, usize, usize) {
    let [batches, frames, columns] = x.shape().dims::<3>();
    assert!(
        heads > 0 && columns.is_multiple_of(heads),
        "{columns} columns do not split into {heads} heads"
    );
    (batches, frames, columns / heads)
}

/// `[b, h, s, s]`: per head, every query row against every key row (`x` and `y` `[b, s, h·w]`).
pub(super) fn pair_dots(x: CubeTensor, y: CubeTensor, heads: usize) -> CubeTensor {
    let (x, y) = (into_contiguous(x), into_contiguous(y));
    let (batches, frames, width) = head_dims(&x, heads);
    assert_eq!(x.shape(), y.shape(), "both sides of a per-head product have one layout");
    let out = empty_like(&x, Shape::new([batches, heads, frames, frames]));
    let elements = batches * heads * frames * frames;
    let (count, dim) = launch_shape(&x, elements);
    let dtype = dtype_to_storage_type(x.dtype);
    pair_dots_kernel::launch(
        &x.client.clone(),
        count,
        dim,
        x.into_tensor_arg(),
        y.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    out
}

/// `[b, s, h·w]`: each head's rows of `x` mixed by `weights` `[b, h, s, s]`, by row (`W·x`) or,
/// `by_column`, by column (`Wᵀ·x`).
pub(super) fn mix(weights: CubeTensor, x: CubeTensor, by_column: bool) -> CubeTensor {
    let (weights, x) = (into_contiguous(weights), into_contiguous(x));
    let [batches, heads, frames, keys] = weights.shape().dims::<4>();
    assert_eq!(frames, keys, "attention weights are square per head");
    let (x_batches, x_frames, width) = head_dims(&x, heads);
    assert_eq!((x_batches, x_frames), (batches, frames), "weights and rows disagree");
    let out = empty_like(&x, x.shape());
    let elements = x.shape().num_elements();
    let (row_stride, column_stride) = if by_column { (1, frames) } else { (frames, 1) };
    let (count, dim) = launch_shape(&x, elements);
    let dtype = dtype_to_storage_type(x.dtype);
    mix_kernel::launch(
        &x.client.clone(),
        count,
        dim,
        weights.into_tensor_arg(),
        x.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        row_stride as u32,
        column_stride as u32,
        dtype,
    );
    out
}
