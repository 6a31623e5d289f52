//! The attention's two per-head products read straight from the packed query, key and value
//! `[b, s, 3·h·w]` that the fused projection writes (`attention_projection.rs`: the query in
//! columns `0..h·w`, the key in `h·w..2·h·w`, the value in `2·h·w..3·h·w`), so that the three
//! are never split apart. The sums are `head_products.rs`'s with the operands' rows 3·h·w long.
//!
//! Each backward pass writes the whole packed tensor's gradient, zeros in the columns its
//! product does not read (the scores' the value's, the mix's the query's and the key's). The
//! mix's runs first (it comes later in the forward pass), and the scores' kernel adds it as it
//! writes its own (`autodiff_graph::fused_op_accumulating`), so joining the two costs no kernel.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::head_products::{HeadOperand, mixed, own_layout, pair_dot};
use super::launch::{empty_like, launch_shape};

/// Part `part` (0 query, 1 key, 2 value) of packed rows of `heads · width` columns a part.
#[cube]
fn packed_part(part: usize, heads: usize, width: usize) -> HeadOperand {
    HeadOperand {
        row: 3 * heads * width,
        column: part * heads * width,
    }
}

/// The index in the compact `[b, s, h·w]` layout of packed element `at` (of `[b, s, 3·h·w]`),
/// and which part (0, 1, 2) holds it.
#[cube]
fn unpacked(at: usize, heads: usize, width: usize) -> (usize, usize) {
    let columns = heads * width;
    let row = at / (3 * columns);
    let column = at % (3 * columns);
    (row * columns + column % columns, column / columns)
}

/// Scores `[b, h, s, s]` from the packed query and key, one unit per score.
#[cube(launch)]
fn scores_kernel<F: Float>(
    packed: &Tensor<F>,
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
    let (query, key) = (packed_part(0, heads, width), packed_part(1, heads, width));
    out[at] = pair_dot::<F>(packed, query, packed, key, at, frames, heads, width);
}

/// The packed gradient of the scores: dq = dS·k in the query's columns, dk = dSᵀ·q in the
/// key's, zero in the value's, plus `incoming` when `accumulate`; one unit per packed element.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn scores_backward_kernel<F: Float>(
    grad: &Tensor<F>,
    packed: &Tensor<F>,
    incoming: &Tensor<F>,
    grad_packed: &mut Tensor<F>,
    elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    #[comptime] accumulate: bool,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let (frames, heads, width) = (frames as usize, heads as usize, width as usize);
    let (compact_at, part) = unpacked(at, heads, width);
    let mut value = F::new(0.0);
    if accumulate {
        value = incoming[at];
    }
    // The query's gradient mixes the key's rows, the key's the query's (weights by column).
    if part == 0 {
        let key = packed_part(1, heads, width);
        value += mixed::<F>(grad, packed, key, compact_at, frames, heads, width, false);
    }
    if part == 1 {
        let query = packed_part(0, heads, width);
        value += mixed::<F>(grad, packed, query, compact_at, frames, heads, width, true);
    }
    grad_packed[at] = value;
}

/// The context `[b, s, h·w]` from the weights and the packed value, one unit per element.
#[cube(launch)]
fn mix_kernel<F: Float>(
    weights: &Tensor<F>,
    packed: &Tensor<F>,
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
    out[at] = mixed::<F>(
        weights,
        packed,
        packed_part(2, heads, width),
        at,
        frames,
        heads,
        width,
        false,
    );
}

/// The mix's backward pass in one dispatch: units `0..m` write dW = dC·vᵀ (`m` the weights'
/// elements), the rest the packed gradient: dv = Wᵀ·dC in the value's columns, zero elsewhere.
#[cube(launch)]
fn mix_backward_kernel<F: Float>(
    grad: &Tensor<F>,
    weights: &Tensor<F>,
    packed: &Tensor<F>,
    grad_weights: &mut Tensor<F>,
    grad_packed: &mut Tensor<F>,
    weight_elements: u32,
    packed_elements: u32,
    frames: u32,
    heads: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS as usize;
    let weight_elements = weight_elements as usize;
    let (frames, heads, width) = (frames as usize, heads as usize, width as usize);
    if unit >= weight_elements + packed_elements as usize {
        terminate!();
    }
    if unit < weight_elements {
        let value = packed_part(2, heads, width);
        grad_weights[unit] = pair_dot::<F>(
            grad,
            own_layout(heads, width),
            packed,
            value,
            unit,
            frames,
            heads,
            width,
        );
    } else {
        let at = unit - weight_elements;
        let (compact_at, part) = unpacked(at, heads, width);
        let mut value = F::new(0.0);
        if part == 2 {
            value = mixed::<F>(
                weights,
                grad,
                own_layout(heads, width),
                compact_at,
                frames,
                heads,
                width,
                true,
            );
        }
        grad_packed[at] = value;
    }
}

/// `(b, s, w)` of packed rows `[b, s, 3·h·w]` with `h` heads.
fn packed_dims(packed: &CubeTensor, heads: usize) -> (usize, usize, usize) {
    let [batches, frames, columns] = packed.shape().dims::<3>();
    assert!(
        heads > 0 && columns.is_multiple_of(3 * heads),
        "{columns} packed columns do not hold a query, key and value of {heads} heads"
    );
    (batches, frames, columns / (3 * heads))
}

/// `[b, h, s, s]`: per head, every query row against every key row of `packed`.
pub(super) fn scores(packed: CubeTensor, heads: usize) -> CubeTensor {
    let packed = into_contiguous(packed);
    let (batches, frames, width) = packed_dims(&packed, heads);
    let out = empty_like(&packed, Shape::new([batches, heads, frames, frames]));
    let elements = batches * heads * frames * frames;
    let (count, dim) = launch_shape(&packed, elements);
    let dtype = dtype_to_storage_type(packed.dtype);
    scores_kernel::launch(
        &packed.client.clone(),
        count,
        dim,
        packed.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    out
}

/// The packed gradient from the scores' (`grad` `[b, h, s, s]`), with `incoming` (the packed
/// rows' gradient so far) added.
pub(super) fn scores_backward(
    grad: CubeTensor,
    packed: CubeTensor,
    incoming: Option<CubeTensor>,
    heads: usize,
) -> CubeTensor {
    let (grad, packed) = (into_contiguous(grad), into_contiguous(packed));
    let accumulate = incoming.is_some();
    // Without a gradient to add, the kernel reads none: `packed` stands in for the binding.
    let incoming = incoming.map_or_else(|| packed.clone(), into_contiguous);
    let (_, frames, width) = packed_dims(&packed, heads);
    let grad_packed = empty_like(&packed, packed.shape());
    let elements = packed.shape().num_elements();
    let (count, dim) = launch_shape(&packed, elements);
    let dtype = dtype_to_storage_type(packed.dtype);
    scores_backward_kernel::launch(
        &packed.client.clone(),
        count,
        dim,
        grad.into_tensor_arg(),
        packed.into_tensor_arg(),
        incoming.into_tensor_arg(),
        grad_packed.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        accumulate,
        dtype,
    );
    grad_packed
}

/// `[b, s, h·w]`: each head's value rows of `packed` mixed by `weights` `[b, h, s, s]`.
pub(super) fn mix(weights: CubeTensor, packed: CubeTensor) -> CubeTensor {
    let (weights, packed) = (into_contiguous(weights), into_contiguous(packed));
    let heads = weights.shape()[1];
    let (batches, frames, width) = packed_dims(&packed, heads);
    let out = empty_like(&packed, Shape::new([batches, frames, heads * width]));
    let elements = batches * frames * heads * width;
    let (count, dim) = launch_shape(&packed, elements);
    let dtype = dtype_to_storage_type(packed.dtype);
    mix_kernel::launch(
        &packed.client.clone(),
        count,
        dim,
        weights.into_tensor_arg(),
        packed.into_tensor_arg(),
        out.clone().into_tensor_arg(),
        elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    out
}

/// The gradients of the weights and of `packed` from the context's (`grad` `[b, s, h·w]`).
pub(super) fn mix_backward(grad: CubeTensor, weights: CubeTensor, packed: CubeTensor) -> (CubeTensor, CubeTensor) {
    let (grad, weights, packed) = (into_contiguous(grad), into_contiguous(weights), into_contiguous(packed));
    let heads = weights.shape()[1];
    let (_, frames, width) = packed_dims(&packed, heads);
    let (grad_weights, grad_packed) = (
        empty_like(&weights, weights.shape()),
        empty_like(&packed, packed.shape()),
    );
    let (weight_elements, packed_elements) = (weights.shape().num_elements(), packed.shape().num_elements());
    let (count, dim) = launch_shape(&packed, weight_elements + packed_elements);
    let dtype = dtype_to_storage_type(packed.dtype);
    mix_backward_kernel::launch(
        &packed.client.clone(),
        count,
        dim,
        grad.into_tensor_arg(),
        weights.into_tensor_arg(),
        packed.into_tensor_arg(),
        grad_weights.clone().into_tensor_arg(),
        grad_packed.clone().into_tensor_arg(),
        weight_elements as u32,
        packed_elements as u32,
        frames as u32,
        heads as u32,
        width as u32,
        dtype,
    );
    (grad_weights, grad_packed)
}
