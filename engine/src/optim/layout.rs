//! Where each of a module's trained parameter tensors lives in flat Adam's buffers, and the
//! moves between a module and those buffers: gathering ids, sizes and gradients, writing them
//! at their offsets, splitting the updated buffer back into the module as views, and clipping
//! every tensor's gradient at once.
//!
//! Each tensor starts at a multiple of `ALIGN` elements so that slices of the flat buffer stay
//! views on every backend (wgpu binds buffers at 256-byte offsets), and every tensor is padded
//! to whole chunks so that per-tensor sums are chunk sums added up by one small matrix product.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

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

/// `parts` (one per tensor, flattened; `None` for none) written at their offsets into one
/// zeroed buffer.
pub(super) fn flatten(layout: &Layout, parts: Vec<Option<Tensor<1>>>, device: &Device) -> Tensor<1> {
    let mut flat = Tensor::zeros([layout.len], device);
    for (i, part) in parts.into_iter().enumerate() {
        if let Some(part) = part {
            flat = flat.slice_assign([layout.range(i)], part);
        }
    }
    flat
}

/// The module's trained parameters (those that require a gradient) in visit order: ids,
/// sizes and (flattened) gradients.
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) ids: Vec<ParamId>,
    pub(super) numels: Vec<usize>,
    pub(super) grads: Vec<Option<Tensor<1>>>,
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

/// The trained parameters' values, flattened, in visit order.
#[derive(Default)]
pub(super) struct ParamValues(pub(super) Vec<Option<Tensor<1>>>);

impl ModuleVisitor for ParamValues {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            let numel = value.shape().num_elements();
            self.0.push(Some(value.inner().reshape([numel])));
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
        let grad = self.grads.remove::<D>(param.id).map(|g| g.reshape([numel]));
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
        let value = self.flat.clone().slice([self.layout.range(i)]).reshape(tensor.shape());
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
