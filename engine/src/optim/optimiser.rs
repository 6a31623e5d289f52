//! The optimiser a trainer steps each of its modules with: flat Adam(W) (`flat_adam`), or, for
//! a run restored from a checkpoint written before it, burn's per-tensor optimiser, whose state
//! that checkpoint holds (so such a run resumes exactly as it would have).

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use super::flat_adam::{FlatAdam, FlatAdamConfig};
use super::saved::FlatStateError;
use crate::readback::ReadBackError;

/// Why an optimiser's saved state does not load, or cannot be saved.
#[derive(Debug, thiserror::Error)]
pub enum OptimStateError {
    #[error(transparent)]
    Flat(#[from] FlatStateError),
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
    /// burn's per-tensor state (burnpack) did not load or save.
    #[error("burn's optimiser state: {0}")]
    PerTensor(String),
}

pub enum Optimiser {
    Flat(FlatAdam),
    PerTensor(ModuleOptimizer),
}

impl Optimiser {
    pub fn new(config: FlatAdamConfig) -> Self {
        Self::Flat(FlatAdam::new(config))
    }

    /// The optimiser for `module` from saved `bytes` (either format).
    pub fn restore<M: Module>(
        config: FlatAdamConfig,
        bytes: &[u8],
        module: &M,
        device: &Device,
    ) -> Result<Self, OptimStateError> {
        match FlatAdam::from_bytes(config, bytes, module, device) {
            Ok(flat) => Ok(Self::Flat(flat)),
            Err(FlatStateError::OtherFormat) => per_tensor(config)
                .from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes.to_vec()))
                .map(Self::PerTensor)
                .map_err(|e| OptimStateError::PerTensor(format!("{e:?}"))),
            Err(invalid) => Err(invalid.into()),
        }
    }

    pub fn step<M: Module>(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Self::Flat(flat) => flat.step(lr, module, grads),
            Self::PerTensor(optim) => optim.step(lr, module, grads),
        }
    }

    /// The state as bytes. The flat optimiser's state is read back asynchronously. burn's
    /// per-tensor state is read synchronously, which only native backends can do; only a run
    /// restored natively from an old checkpoint holds one.
    pub async fn read_bytes(&self) -> Result<Vec<u8>, OptimStateError> {
        match self {
            Self::Flat(flat) => Ok(flat.read_bytes().await?),
            Self::PerTensor(optim) => optim
                .into_bytes()
                .map(|b| b.to_vec())
                .map_err(|e| OptimStateError::PerTensor(format!("{e:?}"))),
        }
    }
}

/// burn's optimiser with the same settings, for state in its format.
fn per_tensor(config: FlatAdamConfig) -> ModuleOptimizer {
    if config.weight_decay == 0.0 && config.clip_norm.is_none() {
        return AdamConfig::new()
            .with_beta_1(config.beta_1)
            .with_beta_2(config.beta_2)
            .with_epsilon(config.epsilon)
            .init();
    }
    AdamWConfig::new()
        .with_beta_1(config.beta_1)
        .with_beta_2(config.beta_2)
        .with_epsilon(config.epsilon)
        .with_weight_decay(config.weight_decay)
        .with_grad_clipping(config.clip_norm.map(GradientClippingConfig::Norm))
        .init()
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    fn step_grads(model: &Linear, step: usize) -> GradientsParams {
        let device = model.weight.val().device();
        let x = Tensor::<2>::from_data(
            TensorData::new((0..12).map(|i| ((i + step) % 5) as f32 - 2.0).collect(), [3, 4]),
            &device,
        );
        GradientsParams::from_module(&mut model.forward(x).powf_scalar(2.0).sum().backward(), model)
    }

    /// A checkpoint from before the flat optimiser holds burn's per-tensor state: it loads as
    /// that, and the run goes on exactly as burn's optimiser would have taken it.
    #[test]
    fn state_in_burns_format_resumes_with_burns_optimiser() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let config = FlatAdamConfig::adamw(1e-3, Some(0.5));
        let mut model = LinearConfig::new(4, 3).init(&device);
        let mut burn = per_tensor(config);
        for step in 0..2 {
            let g = step_grads(&model, step);
            model = burn.step(1e-2, model, g);
        }
        let bytes = burn.into_bytes().unwrap().to_vec();
        let mut restored = Optimiser::restore(config, &bytes, &model, &device.clone().inner()).unwrap();
        assert!(matches!(restored, Optimiser::PerTensor(_)));
        let (g, g_again) = (step_grads(&model, 2), step_grads(&model, 2));
        let ours = restored.step(1e-2, model.clone(), g);
        let theirs = burn.step(1e-2, model, g_again);
        assert_eq!(ours.weight.val().into_data(), theirs.weight.val().into_data());
        // It saves in burn's format again (burn orders the record by a hash map, so compare
        // what loads, not bytes).
        let saved = crate::readback::block_on(restored.read_bytes()).unwrap();
        let again = Optimiser::restore(config, &saved, &ours, &device.clone().inner()).unwrap();
        assert!(matches!(again, Optimiser::PerTensor(_)));
    }

    #[test]
    fn bytes_in_neither_format_are_an_error() {
        let device = Device::flex().autodiff();
        let model = LinearConfig::new(4, 3).init(&device);
        let config = FlatAdamConfig::adam();
        let error = Optimiser::restore(config, b"not a state", &model, &device.clone().inner());
        assert!(error.is_err());
    }
}
