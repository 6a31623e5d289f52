//! Adam(W) over all of a module's parameters at once, in flat buffers.
//!
//! burn's `ModuleOptimizer` updates one parameter tensor at a time: for the `tiny` Conformer
//! (about 220 tensors) that was 1,504 of a WebGPU training step's 3,861 compute dispatches. Here
//! the gradients are written into one flat buffer, the moments live in two more, and the update
//! (per-tensor gradient clipping included) is a handful of whole-buffer operations; the new
//! parameters are views into the updated flat buffer, so splitting it costs no dispatch.
//!
//! The arithmetic is burn's AdamW (`burn-optim` 0.22, `adamw.rs`, with `GradientClipping::Norm`
//! per tensor), operation for operation: a test steps both side by side.
//! Where the tensors sit in the buffers is `layout`; the saved state's format is `saved`.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::layout::{Gathered, Layout, LayoutTensors, ParamValues, Split, clip_per_tensor, flatten};

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

/// The optimiser's state between steps.
pub(super) struct State {
    pub(super) layout: Layout,
    /// Updates each tensor has had (Adam's `t`); a tensor without a gradient in a step keeps its.
    pub(super) steps: Vec<u32>,
    pub(super) moment_1: Tensor<1>,
    pub(super) moment_2: Tensor<1>,
    /// The flat parameters the module's tensors are views of, when the module is the one the
    /// last step returned (`None` after a restore: gathered from the module).
    pub(super) params: Option<Tensor<1>>,
    pub(super) tensors: Option<LayoutTensors>,
}

/// Adam(W) over a whole module in flat buffers. Step it only with the module its previous step
/// returned (or the one it was restored for): it keeps the flat parameters that module's
/// tensors are views of.
pub struct FlatAdam {
    pub(super) config: FlatAdamConfig,
    pub(super) state: Option<State>,
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
}

impl State {
    pub(super) fn fresh(layout: Layout, device: &Device) -> Self {
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

/// A small module, its gradients and the update settings, shared with `saved`'s tests.
#[cfg(test)]
pub(super) mod tests {
    use burn::grad_clipping::GradientClippingConfig;
    use burn::module::{Param, RunningState};
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamWConfig, ModuleOptimizer};

    use super::*;

    /// Sizes that are not multiples of the chunk, and a tensor longer than two chunks.
    #[derive(Module, Debug)]
    pub(in crate::optim) struct Small {
        linear: Linear,
        pub(in crate::optim) scale: Param<Tensor<1>>,
        /// A buffer like BatchNorm's running statistics: visited, but not trained.
        running: RunningState<Tensor<1>>,
    }

    pub(in crate::optim) fn device() -> Device {
        Device::flex().autodiff()
    }

    pub(in crate::optim) fn small(device: &Device) -> Small {
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
    pub(in crate::optim) fn grads(module: &Small, step: usize, use_scale: bool) -> GradientsParams {
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

    pub(in crate::optim) fn values(module: &Small) -> Vec<f32> {
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

    pub(in crate::optim) const CONFIG: FlatAdamConfig = FlatAdamConfig {
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
}
