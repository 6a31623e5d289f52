//! Moves between many small tensors and one flat buffer, for the flat optimiser
//! (`optim::flat_adam`): packing up to [`PACK_PARTS`] gradients into their places in one
//! dispatch (`pack.rs` says where), and taking a parameter back out of the updated buffer as a view.
//!
//! Composed from burn's operations, packing is a `slice_assign` per tensor (a dispatch each,
//! ~190 a `tiny` step) and a parameter whose size is not a multiple of 64 elements comes back
//! as a copy (burn makes a slice a view only when both of its ends are 256-byte aligned; ~130
//! copies a step). WebGPU needs only the start of a binding aligned (its size is rounded up to
//! 4 bytes by cubecl), so [`view`] keeps every parameter a view.

use burn::backend::TensorMetadata;
use burn::backend::cubecl::dtype_to_storage_type;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::launch_shape;
use super::pack::{PACK_PARTS, PackGroup};

/// Element `linear` (row-major order) of `part`, whatever its strides.
#[cube]
fn read_strided<F: Float>(part: &Tensor<F>, linear: usize) -> F {
    let rank = part.rank();
    let mut rest = linear;
    let mut offset = 0;
    for i in 0..rank {
        let axis = rank - 1 - i;
        let size = part.shape(axis);
        offset += (rest % size) * part.stride(axis);
        rest /= size;
    }
    part[offset]
}

/// One unit per element of `flat[group_start..group_start + group_len]`: part `k`'s elements
/// where it lies (`start_k`, `len_k`, relative to the group), zero everywhere else (the
/// padding between tensors, and tensors without a gradient).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn pack_kernel<F: Float>(
    part_0: &Tensor<F>,
    part_1: &Tensor<F>,
    part_2: &Tensor<F>,
    part_3: &Tensor<F>,
    part_4: &Tensor<F>,
    part_5: &Tensor<F>,
    flat: &mut Tensor<F>,
    group_start: u32,
    group_len: u32,
    starts: Sequence<u32>,
    lens: Sequence<u32>,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as u32;
    if at >= group_len {
        terminate!();
    }
    let mut value = F::new(0.0);
    if at >= *starts.index(0) && at < *starts.index(0) + *lens.index(0) {
        value = read_strided::<F>(part_0, (at - *starts.index(0)) as usize);
    }
    if at >= *starts.index(1) && at < *starts.index(1) + *lens.index(1) {
        value = read_strided::<F>(part_1, (at - *starts.index(1)) as usize);
    }
    if at >= *starts.index(2) && at < *starts.index(2) + *lens.index(2) {
        value = read_strided::<F>(part_2, (at - *starts.index(2)) as usize);
    }
    if at >= *starts.index(3) && at < *starts.index(3) + *lens.index(3) {
        value = read_strided::<F>(part_3, (at - *starts.index(3)) as usize);
    }
    if at >= *starts.index(4) && at < *starts.index(4) + *lens.index(4) {
        value = read_strided::<F>(part_4, (at - *starts.index(4)) as usize);
    }
    if at >= *starts.index(5) && at < *starts.index(5) + *lens.index(5) {
        value = read_strided::<F>(part_5, (at - *starts.index(5)) as usize);
    }
    flat[(group_start + at) as usize] = value;
}

/// `flat` with `group`'s range written from `parts` (any ranks and strides). Written in place
/// when nothing else holds `flat` (as in a chain of packs), into a copy otherwise.
pub(super) fn pack(flat: CubeTensor, parts: [CubeTensor; PACK_PARTS], group: PackGroup) -> CubeTensor {
    let flat = if flat.can_mut() && flat.is_contiguous() {
        flat
    } else {
        flat.copy()
    };
    let (count, dim) = launch_shape(&flat, group.len as usize);
    let dtype = dtype_to_storage_type(flat.dtype);
    let client = flat.client.clone();
    let [p0, p1, p2, p3, p4, p5] = parts;
    let mut starts = SequenceArg::new();
    let mut lens = SequenceArg::new();
    for (start, len) in group.parts {
        starts.push(start);
        lens.push(len);
    }
    pack_kernel::launch(
        &client,
        count,
        dim,
        p0.into_tensor_arg(),
        p1.into_tensor_arg(),
        p2.into_tensor_arg(),
        p3.into_tensor_arg(),
        p4.into_tensor_arg(),
        p5.into_tensor_arg(),
        flat.clone().into_tensor_arg(),
        group.start,
        group.len,
        starts,
        lens,
        dtype,
    );
    flat
}

/// Elements in WebGPU's binding-offset alignment (256 bytes of f32): a [`view`] starts at a
/// multiple of it.
const VIEW_ALIGN: usize = 64;

/// The first place at or after `elements` where a [`view`] may start: where a kernel that writes
/// several small gradients into one buffer puts the next, so that each is handed out as a view.
pub(super) fn view_start_after(elements: usize) -> usize {
    elements.div_ceil(VIEW_ALIGN) * VIEW_ALIGN
}

/// Whether a [`view`] may start at `start`.
pub(super) fn can_view_at(start: usize) -> bool {
    start.is_multiple_of(VIEW_ALIGN)
}

/// `flat[start..start + len]` as a view: no kernel, whatever the range's end. `start` must be a
/// multiple of 64 elements (WebGPU's 256-byte binding offset, [`can_view_at`]), as the flat
/// layout places them.
pub(super) fn view(flat: CubeTensor, start: usize, len: usize) -> CubeTensor {
    let flat = burn_cubecl::kernel::into_contiguous(flat);
    let total = flat.shape().num_elements();
    assert!(start + len <= total, "a view past the flat buffer's end");
    let size = flat.dtype.size() as u64;
    let handle = flat
        .handle
        .clone()
        .offset_start(start as u64 * size)
        .offset_end((total - start - len) as u64 * size);
    CubeTensor::new_contiguous(
        flat.client.clone(),
        flat.device.clone(),
        [len].into(),
        handle,
        flat.dtype,
    )
}
