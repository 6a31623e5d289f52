//! Where each of a module's trained parameter tensors lives in flat Adam's buffers, and the
//! moves between a module and those buffers: gathering ids, sizes and gradients, writing them
//! at their offsets (on the fused path a packing dispatch per six tensors, `kernels::fused_pack`),
//! splitting the updated buffer back into the module as views, and clipping every tensor's
//! gradient at once.
//!
//! Each tensor starts at a multiple of `ALIGN` elements so that slices of the flat buffer stay
//! views on every backend (wgpu binds buffers at 256-byte offsets), and every tensor is padded
//! to whole chunks so that per-tensor sums are chunk sums added up by one small matrix product.

use burn::backend::Dispatch;
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::kernels::{self, PACK_PARTS, PackGroup};

/// Elements per alignment unit: 64 × 4 bytes, wgpu's storage-buffer offset alignment.
const ALIGN: usize = 64;
/// Chunks grow (by doubling) until a module has at most this many, which bounds the
/// `[tensors, chunks]` indicator matrix that sums chunks per tensor.
const MAX_CHUNKS: usize = 16_384;

/// Where each parameter tensor lives in the flat buffers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    pub(super) ids: Vec<ParamId>,
    pub(super) numels: Vec<usize>,
    /// Start of each tensor, a multiple of `chunk`.
    pub(super) offsets: Vec<usize>,
    /// Elements per chunk, a multiple of `ALIGN`.
    pub(super) chunk: usize,
    /// Total length, a multiple of `chunk`.
    pub(super) len: usize,
}

impl Layout {
    pub(super) fn new(ids: Vec<ParamId>, numels: Vec<usize>) -> Self {
        // Once a chunk holds the largest tensor, every tensor is one chunk: the loop ends even
        // for a module with more tensors than MAX_CHUNKS.
        let limit = MAX_CHUNKS.max(numels.len());
        let mut chunk = ALIGN;
        while numels.iter().map(|n| n.div_ceil(chunk)).sum::<usize>() > limit {
            chunk *= 2;
        }
        let mut offsets = Vec::with_capacity(numels.len());
        let mut len = 0;
        for &n in &numels {
            offsets.push(len);
            len += n.div_ceil(chunk) * chunk;
        }
        Layout {
            ids,
            numels,
            offsets,
            chunk,
            len,
        }
    }

    pub(super) fn chunks(&self) -> usize {
        self.len / self.chunk
    }

    /// The tensor each chunk belongs to.
    pub(super) fn chunk_owners(&self) -> Vec<usize> {
        (0..self.numels.len())
            .flat_map(|i| std::iter::repeat_n(i, self.numels[i].div_ceil(self.chunk)))
            .collect()
    }

    pub(super) fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i] + self.numels[i]
    }
}

/// Device tensors that depend only on the layout, made at the first step.
pub(super) struct LayoutTensors {
    /// `[tensors, chunks]`: 1 where a chunk belongs to a tensor.
    pub(super) indicator: Tensor<2>,
    /// `[chunks]`: the tensor each chunk belongs to.
    pub(super) owners: Tensor<1, Int>,
}

impl LayoutTensors {
    pub(super) fn new(layout: &Layout, device: &Device) -> Self {
        let (tensors, chunks) = (layout.ids.len(), layout.chunks());
        let owners = layout.chunk_owners();
        let mut indicator = vec![0.0f32; tensors * chunks];
        for (chunk, &owner) in owners.iter().enumerate() {
            indicator[owner * chunks + chunk] = 1.0;
        }
        let owners: Vec<i64> = owners.into_iter().map(|o| o as i64).collect();
        LayoutTensors {
            indicator: Tensor::from_data(TensorData::new(indicator, [tensors, chunks]), device),
            owners: Tensor::from_data(TensorData::new(owners, [chunks]), device),
        }
    }
}

/// burn's `clip_by_norm`, for every tensor at once: each tensor's gradient times
/// `min(1, threshold / (‖g‖ + f32::MIN_POSITIVE))`.
pub(super) fn clip_per_tensor(
    grads: Tensor<1>,
    threshold: f32,
    tensors: &LayoutTensors,
    chunks: usize,
    chunk: usize,
) -> Tensor<1> {
    let len = chunks * chunk;
    let blocks = grads.reshape([chunks, chunk]); // [chunks, chunk]
    let chunk_sums = blocks.clone().square().sum_dim(1); // [chunks, 1]
    let norms = tensors.indicator.clone().matmul(chunk_sums).sqrt(); // [tensors, 1]
    let [count, _] = norms.dims();
    let coefficient = norms
        .reshape([count])
        .add_scalar(f32::MIN_POSITIVE)
        .recip()
        .mul_scalar(threshold)
        .clamp_max(1.0); // [tensors]
    let per_chunk = coefficient.select(0, tensors.owners.clone()).reshape([chunks, 1]);
    (blocks * per_chunk).reshape([len])
}

/// A tensor on its way into a flat buffer, as the module or the backward pass made it (any
/// rank; on the fused path the packing kernel reads it through its strides, so a tensor that
/// is not contiguous is not copied first).
pub(super) type Part = FloatTensor<Dispatch>;

/// `parts` (one per tensor; `None` for none) written at their offsets into one buffer, zeros
/// between them and in place of a `None`. On a cube backend (unless the reference path is
/// asked for) one packing dispatch per [`PACK_PARTS`] tensors, otherwise burn's `slice_assign`,
/// one per tensor; the two give the same bits.
pub(super) fn flatten(layout: &Layout, parts: Vec<Option<Part>>, device: &Device) -> Tensor<1> {
    if kernels::fuses_on(device) && u32::try_from(layout.len).is_ok() {
        let present: Vec<bool> = parts.iter().map(Option::is_some).collect();
        return pack_groups(layout, &present).into_iter().fold(
            Tensor::empty([layout.len], device),
            |flat, (group, members)| {
                let members = members.into_iter().filter_map(|i| parts[i].clone()).collect();
                kernels::fused_pack(flat, members, group)
            },
        );
    }
    let mut flat = Tensor::zeros([layout.len], device);
    for (i, part) in parts.into_iter().enumerate() {
        if let Some(part) = part {
            let part = Dispatch::float_reshape(part, Shape::new([layout.numels[i]]));
            flat = flat.slice_assign([layout.range(i)], Tensor::<1>::from_dispatch(part));
        }
    }
    flat
}

/// The packing dispatches that write a whole flat buffer: consecutive ranges that together
/// cover it, each holding at most [`PACK_PARTS`] of the present parts, with the indices of the
/// tensors each reads (those `present`). Needs `layout.len` to fit in `u32`.
pub(super) fn pack_groups(layout: &Layout, present: &[bool]) -> Vec<(PackGroup, Vec<usize>)> {
    let present: Vec<usize> = (0..present.len()).filter(|&i| present[i]).collect();
    let mut groups = Vec::new();
    for (n, members) in present.chunks(PACK_PARTS).enumerate() {
        // The first group starts at 0 and each ends where the next one's first tensor starts,
        // so the padding and the tensors without a part are written too (as zeros).
        let start = if n == 0 { 0 } else { layout.offsets[members[0]] };
        let end = present
            .get((n + 1) * PACK_PARTS)
            .map_or(layout.len, |&next| layout.offsets[next]);
        let mut slots = [(0u32, 0u32); PACK_PARTS];
        for (slot, &i) in slots.iter_mut().zip(members) {
            *slot = ((layout.offsets[i] - start) as u32, layout.numels[i] as u32);
        }
        let group = PackGroup {
            start: start as u32,
            len: (end - start) as u32,
            parts: slots,
        };
        groups.push((group, members.to_vec()));
    }
    if groups.is_empty() {
        // No tensor has a part: one dispatch writes the zeros.
        let group = PackGroup {
            start: 0,
            len: layout.len as u32,
            parts: [(0, 0); PACK_PARTS],
        };
        groups.push((group, Vec::new()));
    }
    groups
}

/// The module's trained parameters (those that require a gradient) in visit order: ids,
/// sizes and (flattened) gradients.
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) ids: Vec<ParamId>,
    pub(super) numels: Vec<usize>,
    pub(super) grads: Vec<Option<Part>>,
    pub(super) device: Option<Device>,
}

impl Gathered {
    pub(super) fn collect<M: Module>(module: &M, grads: &mut GradientsParams) -> Self {
        let mut visitor = GradVisitor {
            grads,
            found: Gathered::default(),
        };
        module.visit(&mut visitor);
        visitor.found
    }
}

/// The trained parameters' values, in visit order.
#[derive(Default)]
pub(super) struct ParamValues(pub(super) Vec<Option<Part>>);

impl ModuleVisitor for ParamValues {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            self.0.push(Some(value.inner().into_dispatch()));
        }
    }
}

impl ModuleVisitor for Gathered {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            self.ids.push(param.id);
            self.numels.push(value.shape().num_elements());
        }
    }
}

struct GradVisitor<'a> {
    grads: &'a mut GradientsParams,
    found: Gathered,
}

impl ModuleVisitor for GradVisitor<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        // Buffers (BatchNorm's running statistics) are visited too; they are not trained.
        if !value.is_require_grad() {
            return;
        }
        let value = value.inner();
        let numel = value.shape().num_elements();
        self.found.ids.push(param.id);
        self.found.numels.push(numel);
        self.found.device.get_or_insert_with(|| value.device());
        let grad = self.grads.remove::<D>(param.id).map(Tensor::into_dispatch);
        self.found.grads.push(grad);
    }
}

/// Replaces each trained parameter with its slice of the flat buffer (a view: offsets are
/// aligned), and leaves buffers alone.
pub(super) struct Split<'a> {
    pub(super) flat: &'a Tensor<1>,
    pub(super) layout: &'a Layout,
    pub(super) index: usize,
}

impl ModuleMapper for Split<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        if !tensor.is_require_grad() {
            return Param::from_mapped_value(id, tensor, mapper);
        }
        let i = self.index;
        self.index += 1;
        debug_assert_eq!(
            self.layout.ids[i], id,
            "the module changed between gathering and splitting"
        );
        let range = self.layout.range(i);
        let value = if kernels::fuses_on(&self.flat.device()) {
            // A view whatever the tensor's size (burn's slice copies unless both ends align).
            kernels::fused_view(self.flat.clone(), range.start, range.len())
        } else {
            self.flat.clone().slice([range])
        };
        let value = value.reshape(tensor.shape());
        // What else the parameter was marked with carries over, as burn's optimisers keep it.
        let mut updated = Tensor::from_inner(value).require_grad();
        if let Some(strategy) = tensor.gradient_checkpointing_strategy() {
            updated = updated.with_gradient_checkpointing_strategy(strategy);
        }
        if tensor.is_distributed() {
            updated = updated.set_distributed(id);
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packing groups tile the buffer, each reads at most six tensors, and every present
    /// tensor lies inside its group's range (so the rest of each range is written as zeros).
    #[test]
    fn packing_groups_cover_the_buffer_and_each_present_tensor_once() {
        let numels: Vec<usize> = (0..20).map(|i| 1 + (i * 37) % 150).collect();
        let layout = Layout::new((0..20).map(|_| ParamId::new()).collect(), numels);
        for present in [vec![true; 20], (0..20).map(|i| i % 3 != 1).collect(), vec![false; 20]] {
            let groups = pack_groups(&layout, &present);
            let mut end = 0;
            let mut read: Vec<usize> = Vec::new();
            for (group, members) in &groups {
                assert_eq!(group.start as usize, end, "the groups leave a gap or overlap");
                end += group.len as usize;
                assert!(members.len() <= PACK_PARTS);
                for (slot, &i) in members.iter().enumerate() {
                    let (start, len) = group.parts[slot];
                    assert_eq!(group.start as usize + start as usize, layout.offsets[i]);
                    assert_eq!(len as usize, layout.numels[i]);
                    assert!(start + len <= group.len);
                }
                assert!(group.parts[members.len()..].iter().all(|&(_, len)| len == 0));
                read.extend(members);
            }
            assert_eq!(end, layout.len);
            let expected: Vec<usize> = (0..20).filter(|&i| present[i]).collect();
            assert_eq!(read, expected);
            assert_eq!(groups.len(), expected.len().div_ceil(PACK_PARTS).max(1));
        }
    }
}
