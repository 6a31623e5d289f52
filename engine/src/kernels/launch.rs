//! What every fused kernel's launch needs: output buffers and a one-dimensional grid.

use burn::backend::Shape;
use burn::backend::ops::FloatTensorOps;
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::empty_device_contiguous_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::{calculate_cube_count_elemwise, prelude::*};

/// A contiguous tensor of `shape` like `like`, for a kernel to write.
pub(super) fn empty_like(like: &CubeTensor, shape: Shape) -> CubeTensor {
    empty_device_contiguous_dtype(like.client.clone(), like.device.clone(), shape, like.dtype)
}

/// One unit per item, in as many cubes as the runtime wants. Kernels launched so index with
/// `ABSOLUTE_POS`: cubecl may lay the cubes out in two dimensions.
pub(super) fn launch_shape(tensor: &CubeTensor, units: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&tensor.client, units);
    (calculate_cube_count_elemwise(&tensor.client, units, cube_dim), cube_dim)
}

/// `tensor` with another shape of as many elements (no copy when contiguous).
pub(super) fn reshape(tensor: CubeTensor, shape: impl Into<Shape>) -> CubeTensor {
    CubeBackend::float_reshape(tensor, shape.into())
}
