//! The attention's two matrix products per head, read and written in the projections' own
//! layout `[b, s, h·w]` (head `h` in columns `h·w .. (h + 1)·w`), so no head is ever split out
//! into `[b, h, s, w]` or merged back:
//! - scores `S[b, h, i, j] = Σ_c q[b, i, h, c] · k[b, j, h, c]` (the pair-dots kernel),
//! - context `C[b, i, h, c] = Σ_j W[b, h, i, j] · v[b, j, h, c]` (the mix kernel).
//!
//! Each backward pass is one kernel with two kinds of unit, the same sums: dq = mix(dS, k) and
//! dk = mixᵀ(dS, q) (the weights read by column); dW = pair-dots(dC, v) and dv = mixᵀ(W, dC).
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

/// Where a per-head operand lies in its tensor: frame `t`'s head `h` starts at
/// `t · row + column + h · w` (the projections' own layout is `row` = h·w, `column` 0; the
/// packed query, key and value of `packed_heads.rs` share rows of 3·h·w).
#[derive(CubeType, Clone, Copy)]
pub(super) struct HeadOperand {
    pub row: usize,
    pub column: usize,
}

/// `Σ_c x[b, i, h, c] · y[b, j, h, c]` for the element `at` of `[b, h, s, s]`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn pair_dot<F: Float>(
    x: &Tensor<F>,
    x_at: HeadOperand,
    y: &Tensor<F>,
    y_at: HeadOperand,
    at: usize,
    frames: usize,
    heads: usize,
    width: usize,
) -> F {
    let j = at % frames;
    let i = (at / frames) % frames;
    let head = (at / (frames * frames)) % heads;
    let batch = at / (frames * frames * heads);
    let x_start = (batch * frames + i) * x_at.row + x_at.column + head * width;
    let y_start = (batch * frames + j) * y_at.row + y_at.column + head * width;
    let mut sum = F::new(0.0);
    for c in 0..width {
        sum += x[x_start + c] * y[y_start + c];
    }
    sum
}

/// `Σ_u A[b, h, t, u] · x[b, u, h, c]` for the element `at` of `[b, s, h·w]`; `by_column` reads
/// the weights as `A[b, h, u, t]`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn mixed<F: Float>(
    weights: &Tensor<F>,
    x: &Tensor<F>,
    x_at: HeadOperand,
    at: usize,
    frames: usize,
    heads: usize,
    width: usize,
    #[comptime] by_column: bool,
) -> F {
    let c = at % width;
    let head = (at / width) % heads;
    let t = (at / (width * heads)) % frames;
    let batch = at / (width * heads * frames);
    let (row_stride, column_stride) = if by_column { (1, frames) } else { (frames, 1) };
    let weights_start = (batch * heads + head) * frames * frames + t * row_stride;
    let x_start = batch * frames * x_at.row + x_at.column + head * width + c;
    let mut sum = F::new(0.0);
    for u in 0..frames {
        sum += weights[weights_start + u * column_stride] * x[x_start + u * x_at.row];
    }
    sum
}

/// An operand in the projections' own layout, `[b, s, h·w]`.
#[cube]
pub(super) fn own_layout(heads: usize, width: usize) -> HeadOperand {
    HeadOperand {
        row: heads * width,
        column: 0,
    }
}

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
    let (x_at, y_at) = (own_layout(heads, width), own_layout(heads, width));
    out[at] = pair_dot::<F>(x, x_at, y, y_at, at, frames, heads, width);
}

/// `out[b, t, h, c] = Σ_u A[b, h, t, u] · x[b, u, h, c]`, one unit per output element.
#[cube(launch)]
fn mix_kernel<F: Float>(
    weights: &Tensor<F>,
    x: &Tensor<F>,
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
    out[at] = mixed::<F>(weights, x, own_layout(heads, width), at, frames, heads, width, false);
}

/// The scores' backward pass in one dispatch: units `0..n` write dq = dS·k, units `n..2n`
/// dk = dSᵀ·q (`n` the elements of `q`); both read only dS, q and k.
#[cube(launch)]
fn scores_backward_kernel<F: Float>(
    grad: &Tensor<F>,
    query: &Tensor<F>,
    key: &Tensor<F>,
    grad_query: &mut Tensor<F>,
    grad_key: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    let (elements, frames, heads, width) = (elements as usize, frames as usize, heads as usize, width as usize);
    if unit >= 2 * elements {
        terminate!();
    }
    if unit < elements {
        grad_query[unit] = mixed::<F>(grad, key, own_layout(heads, width), unit, frames, heads, width, false);
    } else {
        let at = unit - elements;
        grad_key[at] = mixed::<F>(grad, query, own_layout(heads, width), at, frames, heads, width, true);
    }
}

/// The mix's backward pass in one dispatch: units `0..m` write dW = dC·vᵀ (`m` the weights'
/// elements), units `m..m + n` dv = Wᵀ·dC (`n` the value's); both read only dC, W and v.
#[cube(launch)]
fn mix_backward_kernel<F: Float>(
    grad: &Tensor<F>,
    weights: &Tensor<F>,
    value: &Tensor<F>,
    grad_weights: &mut Tensor<F>,
    grad_value: &mut Tensor<F>,
    weight_elements: u32,
    value_elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    let (weight_elements, frames, heads, width) = (
        weight_elements as usize,
        frames as usize,
        heads as usize,
        width as usize,
    );
    if unit >= weight_elements + value_elements as usize {
        terminate!();
    }
    if unit < weight_elements {
        let (grad_at, value_at) = (own_layout(heads, width), own_layout(heads, width));
        grad_weights[unit] = pair_dot::<F>(grad, grad_at, value, value_at, unit, frames, heads, width);
    } else {
        let at = unit - weight_elements;
        grad_value[at] = mixed::<F>(weights, grad, own_layout(heads, width), at, frames, heads, width, true);
    }
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

/// `[b, s, h·w]`: each head's rows of `x` mixed by `weights` `[b, h, s, s]` (`W·x`).
pub(super) fn mix(weights: CubeTensor, x: CubeTensor) -> CubeTensor {
    let (weights, x) = (into_contiguous(weights), into_contiguous(x));
    let (batches, frames, heads, width) = mix_dims(&weights, &x);
    let out = empty_like(&x, x.shape());
    let elements = batches * frames * heads * width;
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
        dtype,
    );
    out
}

/// `(b, s, h, w)` of weights `[b, h, s, s]` mixing rows `[b, s, h·w]`.
fn mix_dims(weights: &CubeTensor, x: &CubeTensor) -> (usize, usize, usize, usize) {
    let [batches, heads, frames, keys] = weights.shape().dims::<4>();
    assert_eq!(frames, keys, "attention weights are square per head");
    let (x_batches, x_frames, width) = head_dims(x, heads);
    assert_eq!((x_batches, x_frames), (batches, frames), "weights and rows disagree");
    (batches, frames, heads, width)
}

/// The gradients of the query and the key from the scores' (`grad` `[b, h, s, s]`).
pub(super) fn scores_backward(grad: CubeTensor, query: CubeTensor, key: CubeTensor) -> (CubeTensor, CubeTensor) {
    let (grad, query, key) = (into_contiguous(grad), into_contiguous(query), into_contiguous(key));
    let (_, frames, heads, width) = mix_dims(&grad, &query);
    assert_eq!(
        query.shape(),
        key.shape(),
        "both sides of a per-head product have one layout"
    );
    let (grad_query, grad_key) = (empty_like(&query, query.shape()), empty_like(&key, key.shape()));
    let elements = query.shape().num_elements();
    let (count, dim) = launch_shape(&query, 2 * elements);
    let dtype = dtype_to_storage_type(query.dtype);
    scores_backward_kernel::launch(
        &query.client.clone(),
        count,
        dim,
        grad.into_tensor_arg(),
        query.into_tensor_arg(),
        key.into_tensor_arg(),
        grad_query.clone().into_tensor_arg(),
        grad_key.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    (grad_query, grad_key)
}

/// The gradients of the weights and the value from the mixed rows' (`grad` `[b, s, h·w]`).
pub(super) fn mix_backward(grad: CubeTensor, weights: CubeTensor, value: CubeTensor) -> (CubeTensor, CubeTensor) {
    let (grad, weights, value) = (into_contiguous(grad), into_contiguous(weights), into_contiguous(value));
    let (_, frames, heads, width) = mix_dims(&weights, &value);
    let (grad_weights, grad_value) = (empty_like(&weights, weights.shape()), empty_like(&value, value.shape()));
    let (weight_elements, value_elements) = (weights.shape().num_elements(), value.shape().num_elements());
    let (count, dim) = launch_shape(&value, weight_elements + value_elements);
    let dtype = dtype_to_storage_type(value.dtype);
    mix_backward_kernel::launch(
        &value.client.clone(),
        count,
        dim,
        grad.into_tensor_arg(),
        weights.into_tensor_arg(),
        value.into_tensor_arg(),
        grad_weights.clone().into_tensor_arg(),
        grad_value.clone().into_tensor_arg(),
        weight_elements as u32,
        value_elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    (grad_weights, grad_value)
}
