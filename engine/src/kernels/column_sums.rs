//! Sums down the columns of a row-major matrix: the bias gradients of the fused operations
//! whose backward kernels are already at the binding limit (a kernel binds at most 7 storage
//! buffers here: WebGPU guarantees 8, and wgpu on Metal keeps one for itself).

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::{empty_like, launch_shape};

/// One unit per column, walking the rows (reads stay contiguous across the units of a cube).
#[cube(launch)]
fn column_sums_kernel<F: Float>(
    matrix: &Tensor<F>,
    sums: &mut Tensor<F>,
    rows: u32,
    width: u32,
    #[define(F)] _dtype: ElemType,
) {
    let column = ABSOLUTE_POS as usize;
    if column >= width as usize {
        terminate!();
    }
    let width = width as usize;
    let mut sum = F::new(0.0);
    for row in 0..rows as usize {
        sum += matrix[row * width + column];
    }
    sums[column] = sum;
}

/// `[width]`: the sum over every axis but the last of `matrix`.
pub(super) fn column_sums(matrix: CubeTensor) -> CubeTensor {
    let matrix = into_contiguous(matrix);
    let shape = matrix.shape();
    let width = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / width.max(1);
    let sums = empty_like(&matrix, [width].into());
    let (count, dim) = launch_shape(&matrix, width);
    let dtype = dtype_to_storage_type(matrix.dtype);
    let client = matrix.client.clone();
    column_sums_kernel::launch(
        &client,
        count,
        dim,
        matrix.into_tensor_arg(),
        sums.clone().into_tensor_arg(),
        rows as u32,
        width as u32,
        dtype,
    );
    sums
}
