//! Adam(W) over all of a module's parameters at once, in flat buffers.
//!
//! burn's `ModuleOptimizer` updates one parameter tensor at a time: for the `tiny` Conformer
//! (about 220 tensors) that was 1,504 of a WebGPU training step's 3,861 compute dispatches. Here
//! the gradients are written into one flat buffer, the moments live in two more, and the update
//! (per-tensor gradient clipping included) is a handful of whole-buffer operations; the new
//! parameters are views into the updated flat buffer, so splitting it costs no dispatch.
//!
//! The arithmetic is burn's AdamW (`burn-optim` 0.22, `adamw.rs`, with `GradientClipping::Norm`
//! per tensor), operation for operation: a test steps both side by side. Each tensor starts
//! at a multiple of `ALIGN` elements so that slices of the flat buffer stay views on every
//! backend (wgpu binds buffers at 256-byte offsets), and every tensor is padded to whole
//! chunks so that per-tensor sums are chunk sums added up by one small matrix product.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;

use crate::readback::read_floats;

/// Elements per alignment unit: 64 × 4 bytes, wgpu's storage-buffer offset alignment.
const ALIGN: usize = 64;
/// Chunks grow (by doubling) until a module has at most this many, which bounds the
/// `[tensors, chunks]` indicator matrix that sums chunks per tensor.
const MAX_CHUNKS: usize = 16_384;
/// Marks the serialised state (the older, per-tensor format is burn's burnpack).
const MAGIC: &[u8; 8] = b"PLFLADAM";
const VERSION: u32 = 1;

/// The hyper-parameters of the update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlatAdamConfig {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Decoupled weight decay (AdamW); 0 gives Adam.
    pub weight_decay: f32,
    /// Each tensor's gradient is scaled to at most this L2 norm (`None`: no clipping).
    pub clip_norm: Option<f32>,
}

impl FlatAdamConfig {
    /// burn's `AdamWConfig` defaults with the given weight decay and clipping.
    pub fn adamw(weight_decay: f32, clip_norm: Option<f32>) -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
            weight_decay,
            clip_norm,
        }
    }

    /// burn's `AdamConfig` defaults: no weight decay, no clipping.
    pub fn adam() -> Self {
        Self::adamw(0.0, None)
    }
}

/// Where each parameter tensor lives in the flat buffers.
#[derive(Debug, Clone, PartialEq)]
struct Layout {
    ids: Vec<ParamId>,
    numels: Vec<usize>,
    /// Start of each tensor, a multiple of `chunk`.
    offsets: Vec<usize>,
    /// Elements per chunk, a multiple of `ALIGN`.
    chunk: usize,
    /// Total length, a multiple of `chunk`.
    len: usize,
}

impl Layout {
    fn new(ids: Vec<ParamId>, numels: Vec<usize>) -> Self {
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

    fn chunks(&self) -> usize {
        self.len / self.chunk
    }

    /// The tensor each chunk belongs to.
    fn chunk_owners(&self) -> Vec<usize> {
        (0..self.numels.len())
            .flat_map(|i| std::iter::repeat_n(i, self.numels[i].div_ceil(self.chunk)))
            .collect()
    }

    fn range(&self, i: usize) -> std::ops::Range<usize> {
        self.offsets[i]..self.offsets[i] + self.numels[i]
    }
}

/// Device tensors that depend only on the layout, made at the first step.
struct LayoutTensors {
    /// `[tensors, chunks]`: 1 where a chunk belongs to a tensor.
    indicator: Tensor<2>,
    /// `[chunks]`: the tensor each chunk belongs to.
    owners: Tensor<1, Int>,
}

/// The optimiser's state between steps.
struct State {
    layout: Layout,
    /// Updates each tensor has had (Adam's `t`); a tensor without a gradient in a step keeps its.
    steps: Vec<u32>,
    moment_1: Tensor<1>,
    moment_2: Tensor<1>,
    /// The flat parameters the module's tensors are views of, when the module is the one the
    /// last step returned (`None` after a restore: gathered from the module).
    params: Option<Tensor<1>>,
    tensors: Option<LayoutTensors>,
}

/// Adam(W) over a whole module in flat buffers. Step it only with the module its previous step
/// returned (or the one it was restored for): it keeps the flat parameters that module's
/// tensors are views of.
pub struct FlatAdam {
    config: FlatAdamConfig,
    state: Option<State>,
}

/// Why saved optimiser state does not load.
#[derive(Debug, Clone, PartialEq)]
pub enum FlatStateError {
    /// Not this format: burn's per-tensor burnpack, written by Prunelab before the flat optimiser.
    OtherFormat,
    /// This format, but damaged or for another module.
    Invalid(String),
}

impl std::fmt::Display for FlatStateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OtherFormat => write!(f, "not flat Adam state"),
            Self::Invalid(why) => write!(f, "{why}"),
        }
    }
}

impl FlatAdam {
    pub fn new(config: FlatAdamConfig) -> Self {
        Self { config, state: None }
    }

    /// One update of `module` with `grads` at learning rate `lr`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        let found = Gathered::collect(&module, &mut grads);
        if found.numels.is_empty() {
            return module;
        }
        let layout = Layout::new(found.ids.clone(), found.numels.clone());
        let device = found.device.clone().expect("a module with parameters has a device");
        let mut state = match self.state.take() {
            Some(state) if state.layout == layout => state,
            _ => State::fresh(layout, &device),
        };
        // The parameters are gathered from the module only when the state does not already
        // hold them (the first step, or after a restore): every other step's module is made of
        // views of `state.params`.
        let params = state.params.take().unwrap_or_else(|| {
            let mut values = ParamValues::default();
            module.visit(&mut values);
            flatten(&state.layout, values.0, &device)
        });
        let (state, flat) = self.update(lr, state, params, found, &device);
        let mut split = Split {
            flat: &flat,
            layout: &state.layout,
            index: 0,
        };
        let module = module.map(&mut split);
        self.state = Some(State {
            params: Some(flat),
            ..state
        });
        module
    }

    fn update(
        &self,
        lr: f64,
        mut state: State,
        params: Tensor<1>,
        found: Gathered,
        device: &Device,
    ) -> (State, Tensor<1>) {
        let c = &self.config;
        let layout = &state.layout;
        let (chunks, chunk) = (layout.chunks(), layout.chunk);
        let tensors = state.tensors.get_or_insert_with(|| LayoutTensors::new(layout, device));
        let present: Vec<bool> = found.grads.iter().map(Option::is_some).collect();
        let grads = flatten(layout, found.grads, device);
        let grads = match c.clip_norm {
            Some(threshold) => clip_per_tensor(grads, threshold, tensors, chunks, chunk),
            None => grads,
        };
        for (steps, &has) in state.steps.iter_mut().zip(&present) {
            *steps += u32::from(has);
        }
        let m = state
            .moment_1
            .clone()
            .mul_scalar(c.beta_1)
            .add(grads.clone().mul_scalar(1.0 - c.beta_1));
        let v = state
            .moment_2
            .clone()
            .mul_scalar(c.beta_2)
            .add(grads.square().mul_scalar(1.0 - c.beta_2));
        let decay = 1.0 - lr * c.weight_decay as f64;
        let uniform = present.iter().all(|&p| p) && state.steps.windows(2).all(|w| w[0] == w[1]);
        let (m, v, params) = if uniform {
            let t = state.steps[0] as i32;
            let m_hat = m.clone().div_scalar(1.0 - c.beta_1.powi(t));
            let v_hat = v.clone().div_scalar(1.0 - c.beta_2.powi(t));
            let delta = m_hat.div(v_hat.sqrt().add_scalar(c.epsilon));
            let params = params.mul_scalar(decay) - delta.mul_scalar(lr);
            (m, v, params)
        } else {
            // Some tensor got no gradient this step, or tensors have had different numbers of
            // updates: per-chunk bias corrections, and tensors without a gradient keep
            // their parameters and moments.
            let owners = layout.chunk_owners();
            let per_chunk = |f: &dyn Fn(usize) -> f32| {
                let values: Vec<f32> = owners.iter().map(|&i| f(i)).collect();
                Tensor::<1>::from_data(TensorData::new(values, [chunks]), device).reshape([chunks, 1])
            };
            let correction_1 = per_chunk(&|i| 1.0 - c.beta_1.powi(state.steps[i] as i32));
            let correction_2 = per_chunk(&|i| 1.0 - c.beta_2.powi(state.steps[i] as i32));
            let frozen = per_chunk(&|i| if present[i] { 0.0 } else { 1.0 }).equal_elem(1.0);
            let frozen = frozen.expand([chunks, chunk]);
            let blocks = |t: Tensor<1>| t.reshape([chunks, chunk]);
            let m_hat = blocks(m.clone()).div(correction_1.expand([chunks, chunk]));
            let v_hat = blocks(v.clone()).div(correction_2.expand([chunks, chunk]));
            let delta = m_hat.div(v_hat.sqrt().add_scalar(c.epsilon));
            let updated = blocks(params.clone()).mul_scalar(decay) - delta.mul_scalar(lr);
            let keep =
                |new: Tensor<2>, old: Tensor<1>| new.mask_where(frozen.clone(), blocks(old)).reshape([layout.len]);
            (
                keep(blocks(m), state.moment_1.clone()),
                keep(blocks(v), state.moment_2.clone()),
                keep(updated, params),
            )
        };
        state.moment_1 = m;
        state.moment_2 = v;
        (state, params)
    }

    /// The state as bytes: the layout (parameter ids and sizes), each tensor's update count and
    /// both moments. Reads the moments back asynchronously (what WebGPU needs).
    pub async fn read_bytes(&self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let Some(state) = &self.state else {
            out.extend_from_slice(&0u64.to_le_bytes());
            return Ok(out);
        };
        let layout = &state.layout;
        out.extend_from_slice(&(layout.ids.len() as u64).to_le_bytes());
        for i in 0..layout.ids.len() {
            out.extend_from_slice(&layout.ids[i].val().to_le_bytes());
            out.extend_from_slice(&(layout.numels[i] as u64).to_le_bytes());
            out.extend_from_slice(&u64::from(state.steps[i]).to_le_bytes());
        }
        for moment in [&state.moment_1, &state.moment_2] {
            let values = read_floats(moment.clone(), "the optimiser's moments")
                .await
                .map_err(|e| e.to_string())?;
            for i in 0..layout.ids.len() {
                for value in &values[layout.range(i)] {
                    out.extend_from_slice(&value.to_le_bytes());
                }
            }
        }
        Ok(out)
    }

    /// State saved by `read_bytes` for `module` (on `device`), checked against the module's
    /// parameters.
    pub fn from_bytes<M: Module>(
        config: FlatAdamConfig,
        bytes: &[u8],
        module: &M,
        device: &Device,
    ) -> Result<Self, FlatStateError> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.take(MAGIC.len()).ok() != Some(MAGIC.as_slice()) {
            return Err(FlatStateError::OtherFormat);
        }
        let version = reader.u32()?;
        if version != VERSION {
            return Err(FlatStateError::Invalid(format!(
                "flat Adam state version {version} is not {VERSION}"
            )));
        }
        let count = reader.size()?;
        if count == 0 {
            return reader.finish().map(|()| Self::new(config));
        }
        // Each tensor takes 24 bytes of layout: a count beyond what the bytes hold is damage.
        if count > reader.remaining() / 24 {
            return Err(FlatStateError::Invalid(format!(
                "flat Adam state claims {count} tensors in {} bytes",
                bytes.len()
            )));
        }
        let mut saved = Vec::with_capacity(count);
        for _ in 0..count {
            saved.push((reader.u64()?, reader.size()?, reader.u64()?));
        }
        let mut found = Gathered::default();
        module.visit(&mut found);
        let expected: Vec<(u64, usize)> = found
            .ids
            .iter()
            .map(|id| id.val())
            .zip(found.numels.iter().copied())
            .collect();
        let stored: Vec<(u64, usize)> = saved.iter().map(|&(id, n, _)| (id, n)).collect();
        if stored != expected {
            let first = stored
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(stored.len().min(expected.len()));
            return Err(FlatStateError::Invalid(format!(
                "optimiser state is for {} parameter tensors that do not match the model's {} (first difference: tensor {first}, {:?} against {:?})",
                stored.len(),
                expected.len(),
                stored.get(first),
                expected.get(first),
            )));
        }
        let total: usize = expected.iter().map(|&(_, n)| n).sum();
        if reader.remaining() != 2 * 4 * total {
            return Err(FlatStateError::Invalid(format!(
                "optimiser state holds {} bytes of moments, not the {} its {total} parameters need",
                reader.remaining(),
                8 * total
            )));
        }
        let layout = Layout::new(found.ids, found.numels);
        let mut moment = || -> Result<Tensor<1>, FlatStateError> {
            let mut values = vec![0.0f32; layout.len];
            for i in 0..layout.ids.len() {
                for slot in &mut values[layout.range(i)] {
                    *slot = reader.f32()?;
                }
            }
            Ok(Tensor::from_data(TensorData::new(values, [layout.len]), device))
        };
        let (moment_1, moment_2) = (moment()?, moment()?);
        let steps = saved
            .iter()
            // Adam's bias correction takes the count as an i32 power.
            .map(|&(_, _, s)| {
                u32::try_from(s)
                    .ok()
                    .filter(|&s| s <= i32::MAX as u32)
                    .ok_or_else(|| FlatStateError::Invalid(format!("{s} updates is not a count")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            config,
            state: Some(State {
                layout,
                steps,
                moment_1,
                moment_2,
                params: None,
                tensors: None,
            }),
        })
    }
}

impl State {
    fn fresh(layout: Layout, device: &Device) -> Self {
        let len = layout.len;
        State {
            steps: vec![0; layout.ids.len()],
            moment_1: Tensor::zeros([len], device),
            moment_2: Tensor::zeros([len], device),
            params: None,
            tensors: None,
            layout,
        }
    }
}

impl LayoutTensors {
    fn new(layout: &Layout, device: &Device) -> Self {
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
fn clip_per_tensor(
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
fn flatten(layout: &Layout, parts: Vec<Option<Tensor<1>>>, device: &Device) -> Tensor<1> {
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
struct Gathered {
    ids: Vec<ParamId>,
    numels: Vec<usize>,
    grads: Vec<Option<Tensor<1>>>,
    device: Option<Device>,
}

impl Gathered {
    fn collect<M: Module>(module: &M, grads: &mut GradientsParams) -> Self {
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
struct ParamValues(Vec<Option<Tensor<1>>>);

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
struct Split<'a> {
    flat: &'a Tensor<1>,
    layout: &'a Layout,
    index: usize,
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

/// Reads little-endian numbers, failing (never panicking) at the end of the bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], FlatStateError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| FlatStateError::Invalid("optimiser state ends early".into()))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, FlatStateError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, FlatStateError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A u64 that must fit this platform's `usize` (wasm32's is 32 bits).
    fn size(&mut self) -> Result<usize, FlatStateError> {
        let value = self.u64()?;
        usize::try_from(value).map_err(|_| FlatStateError::Invalid(format!("{value} is too large a size")))
    }

    fn f32(&mut self) -> Result<f32, FlatStateError> {
        Ok(f32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn finish(&self) -> Result<(), FlatStateError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(FlatStateError::Invalid(format!("{n} bytes after the optimiser state"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::grad_clipping::GradientClippingConfig;
    use burn::module::{Param, RunningState};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, ModuleOptimizer};

    use super::*;

    /// Sizes that are not multiples of the chunk, and a tensor longer than two chunks.
    #[derive(Module, Debug)]
    struct Small {
        linear: Linear,
        scale: Param<Tensor<1>>,
        /// A buffer like BatchNorm's running statistics: visited, but not trained.
        running: RunningState<Tensor<1>>,
    }

    fn device() -> Device {
        Device::flex().autodiff()
    }

    fn small(device: &Device) -> Small {
        device.seed(11);
        Small {
            linear: LinearConfig::new(5, 7).init(device),
            scale: Param::from_tensor(Tensor::random(
                [130],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                device,
            )),
            running: RunningState::new(Tensor::zeros([3], device)),
        }
    }

    /// A loss whose gradients differ in size by tensor (so some are clipped and some not);
    /// `use_scale: false` leaves `scale` without a gradient.
    fn grads(module: &Small, step: usize, use_scale: bool) -> GradientsParams {
        let device = module.scale.val().device();
        let x = Tensor::<2>::from_data(
            TensorData::new(
                (0..15).map(|i| ((i * 7 + step * 3) % 11) as f32 / 5.0 - 1.0).collect(),
                [3, 5],
            ),
            &device,
        );
        let mut loss = module.linear.forward(x).powf_scalar(2.0).sum().mul_scalar(3.0);
        if use_scale {
            loss = loss + module.scale.val().sin().sum().mul_scalar(0.01);
        }
        GradientsParams::from_module(&mut loss.backward(), module)
    }

    fn values(module: &Small) -> Vec<f32> {
        let mut all = module.linear.weight.val().into_data().try_to_vec::<f32>().unwrap();
        all.extend(
            module
                .linear
                .bias
                .as_ref()
                .unwrap()
                .val()
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
        all.extend(module.scale.val().into_data().try_to_vec::<f32>().unwrap());
        all
    }

    fn assert_close(a: &[f32], b: &[f32], step: usize) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-6 * x.abs().max(1.0),
                "step {step}, value {i}: {x} vs {y}"
            );
        }
    }

    const CONFIG: FlatAdamConfig = FlatAdamConfig {
        beta_1: 0.9,
        beta_2: 0.98,
        epsilon: 1e-8,
        weight_decay: 1e-3,
        clip_norm: Some(0.5),
    };

    fn reference() -> ModuleOptimizer {
        AdamWConfig::new()
            .with_beta_2(0.98)
            .with_epsilon(1e-8)
            .with_weight_decay(1e-3)
            .with_grad_clipping(Some(GradientClippingConfig::Norm(0.5)))
            .init()
    }

    /// burn's AdamW with per-tensor clipping is the reference: the same updates, step for step,
    /// within float rounding (1e-6 relative), including a step in which one tensor has no
    /// gradient (it keeps its value and its update count).
    #[test]
    fn updates_as_burns_adamw_does() {
        let device = device();
        let mut ours = small(&device);
        values(&ours); // initialises the lazy parameters before they are shared
        let mut theirs = ours.clone();
        let (mut flat, mut burn) = (FlatAdam::new(CONFIG), reference());
        let mut clipped = false;
        for step in 0..6 {
            let use_scale = step != 2;
            let g = grads(&ours, step, use_scale);
            let norm = g
                .get::<2>(ours.linear.weight.id)
                .unwrap()
                .powf_scalar(2.0)
                .sum()
                .sqrt()
                .into_scalar::<f32>();
            clipped |= norm > 0.5;
            ours = flat.step(1e-2, ours, g);
            let g = grads(&theirs, step, use_scale);
            theirs = burn.step(1e-2, theirs, g);
            assert_close(&values(&ours), &values(&theirs), step);
        }
        assert!(
            clipped,
            "no gradient was large enough to be clipped: the test would miss clipping"
        );
    }

    /// A buffer that a forward pass changed keeps its new value through the update.
    #[test]
    fn buffers_are_left_as_the_forward_pass_made_them() {
        let device = device();
        let mut flat = FlatAdam::new(CONFIG);
        let mut model = small(&device);
        for step in 0..3 {
            let buffer = Tensor::<1>::full([3], step as f32 + 0.5, &device);
            model.running.update(buffer.clone());
            model.running.value_sync(); // as BatchNorm's forward pass does
            let g = grads(&model, step, true);
            model = flat.step(1e-2, model, g);
            assert_eq!(model.running.value().into_data(), buffer.into_data(), "step {step}");
        }
    }

    /// Saving and restoring the state mid-run continues exactly as the uninterrupted run.
    #[test]
    fn a_restored_state_continues_as_the_run_would_have() {
        let device = device();
        let mut flat = FlatAdam::new(CONFIG);
        let mut model = small(&device);
        for step in 0..3 {
            let g = grads(&model, step, step != 1);
            model = flat.step(1e-2, model, g);
        }
        let bytes = crate::readback::block_on(flat.read_bytes()).unwrap();
        let mut restored = FlatAdam::from_bytes(CONFIG, &bytes, &model, &device.clone().inner()).unwrap();
        let mut copy = model.clone();
        for step in 3..5 {
            let (g, g_copy) = (grads(&model, step, true), grads(&copy, step, true));
            model = flat.step(1e-2, model, g);
            copy = restored.step(1e-2, copy, g_copy);
        }
        assert_eq!(values(&model), values(&copy));
    }

    #[test]
    fn damaged_or_foreign_state_is_refused_by_name() {
        let device = device();
        let mut flat = FlatAdam::new(CONFIG);
        let model = small(&device);
        let g = grads(&model, 0, true);
        let model = flat.step(1e-2, model, g);
        let bytes = crate::readback::block_on(flat.read_bytes()).unwrap();
        let plain = device.clone().inner();
        let load = |b: &[u8], m: &Small| FlatAdam::from_bytes(CONFIG, b, m, &plain).err();
        assert_eq!(load(b"\x00burnpack", &model), Some(FlatStateError::OtherFormat));
        let truncated = load(&bytes[..bytes.len() - 3], &model).unwrap().to_string();
        assert!(truncated.contains("bytes of moments"), "{truncated}");
        let mut huge = bytes.clone();
        huge[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
        let claim = load(&huge, &model).unwrap().to_string();
        assert!(claim.contains("claims"), "{claim}");
        let other = load(&bytes, &small(&device)).unwrap().to_string();
        assert!(other.contains("do not match"), "{other}");
    }
}
