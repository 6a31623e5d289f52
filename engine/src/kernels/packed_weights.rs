//! The attention projections' three weights side by side, and their gradients back apart, for
//! the fused projection (`attention_projection.rs`): packing `[d, w]` × 3 into `[d, 3w]` (one
//! kernel), and the weights' gradients as views of one product where the layout allows, else
//! unpacked by a kernel.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::flat_pack::{can_view_at, view};
use super::launch::{empty_like, launch_shape, reshape};
use super::product_pair::{product_pair, transposed};

/// `[rows, 3w]` from three `[rows, w]`: each row the query's, the key's and the value's side by
/// side; one unit per element.
#[cube(launch)]
fn pack_kernel<F: Float>(
    query: &Tensor<F>,
    key: &Tensor<F>,
    value: &Tensor<F>,
    packed: &mut Tensor<F>,
    elements: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let width = width as usize;
    let (row, column) = (at / (3 * width), at % (3 * width));
    let part = column / width;
    let source = row * width + column % width;
    let mut element = key[source];
    if part == 0 {
        element = query[source];
    }
    if part == 2 {
        element = value[source];
    }
    packed[at] = element;
}

/// The inverse of [`pack_kernel`]: three `[rows, w]` from `[rows, 3w]`.
#[cube(launch)]
fn unpack_kernel<F: Float>(
    packed: &Tensor<F>,
    query: &mut Tensor<F>,
    key: &mut Tensor<F>,
    value: &mut Tensor<F>,
    elements: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    if at >= elements as usize {
        terminate!();
    }
    let width = width as usize;
    let (row, column) = (at / (3 * width), at % (3 * width));
    let part = column / width;
    let target = row * width + column % width;
    if part == 0 {
        query[target] = packed[at];
    }
    if part == 1 {
        key[target] = packed[at];
    }
    if part == 2 {
        value[target] = packed[at];
    }
}

/// The three weights `[d, w]` side by side, `[d, 3w]`.
pub(super) fn pack(weights: [CubeTensor; 3]) -> CubeTensor {
    let [query, key, value] = weights.map(into_contiguous);
    let [rows, width] = query.shape().dims::<2>();
    assert!(
        key.shape().dims::<2>() == [rows, width] && value.shape().dims::<2>() == [rows, width],
        "the packed projections have one shape"
    );
    let packed = empty_like(&query, Shape::new([rows, 3 * width]));
    let elements = rows * 3 * width;
    let (count, dim) = launch_shape(&query, elements);
    let dtype = dtype_to_storage_type(query.dtype);
    pack_kernel::launch(
        &query.client.clone(),
        count,
        dim,
        query.into_tensor_arg(),
        key.into_tensor_arg(),
        value.into_tensor_arg(),
        packed.clone().into_tensor_arg(),
        elements as u32,
        width as u32,
        dtype,
    );
    packed
}

/// The three `[d, w]` of a packed `[d, 3w]`.
fn unpack(packed: CubeTensor) -> [CubeTensor; 3] {
    let packed = into_contiguous(packed);
    let [rows, columns] = packed.shape().dims::<2>();
    let width = columns / 3;
    let parts: [CubeTensor; 3] = std::array::from_fn(|_| empty_like(&packed, Shape::new([rows, width])));
    let (count, dim) = launch_shape(&packed, rows * columns);
    let dtype = dtype_to_storage_type(packed.dtype);
    unpack_kernel::launch(
        &packed.client.clone(),
        count,
        dim,
        packed.into_tensor_arg(),
        parts[0].clone().into_tensor_arg(),
        parts[1].clone().into_tensor_arg(),
        parts[2].clone().into_tensor_arg(),
        (rows * columns) as u32,
        width as u32,
        dtype,
    );
    parts
}

/// The projection's backward products from the input's rows `[n, d]`, `dz` `[n, 3w]` and the
/// packed weights `[d, 3w]`, as one dispatch (`product_pair.rs`): the input's gradient
/// `dz · Wᵀ` `[n, d]` and the three weights' `[d, w]`. The weights' are taken as
/// dWᵀ = dzᵀ·x `[3w, d]`, each weight's gradient a block of rows: where each block starts at a
/// multiple of 64 elements (w·d is, for `tiny` and any even w there), the three are transposed
/// views of it, and the optimiser's packing reads them as they lie; otherwise dW = xᵀ·dz is
/// unpacked by a kernel.
pub(super) fn input_and_weight_grads(
    input_rows: CubeTensor,
    dz: CubeTensor,
    packed_weights: CubeTensor,
) -> (CubeTensor, [CubeTensor; 3]) {
    let [d, width] = [input_rows.shape()[1], dz.shape()[1] / 3];
    let input_grad = [dz.clone(), transposed(packed_weights)];
    if can_view_at(width * d) {
        let (grad_input, weights_transposed) = product_pair(input_grad, [transposed(dz), input_rows]);
        let weights = std::array::from_fn(|part| {
            let block = reshape(
                view(weights_transposed.clone(), part * width * d, width * d),
                [width, d],
            );
            transposed(block)
        });
        (grad_input, weights)
    } else {
        let (grad_input, weights) = product_pair(input_grad, [transposed(input_rows), dz]);
        (grad_input, unpack(weights))
    }
}
