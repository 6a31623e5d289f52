//! The model's LayerNorms: burn's `LayerNorm` module holds the parameters (so checkpoints are
//! unchanged), and the forward pass takes the fused kernel where this thread's path and the
//! device allow it (`kernels::fuses_on`), burn's composed one otherwise.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::kernels;

/// ε of every LayerNorm in the model (burn's default). Stated here because the fused kernel
/// needs it and burn's module keeps its own private.
const EPSILON: f64 = 1e-5;

/// A LayerNorm over `d` features, γ = 1 and β = 0.
pub(crate) fn layer_norm_init(d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(EPSILON).init(device)
}

/// `norm` applied to the last axis of `x`.
pub(crate) fn layer_norm<const D: usize>(norm: &LayerNorm, x: Tensor<D>) -> Tensor<D> {
    match &norm.beta {
        Some(beta) if kernels::fuses_on(&x.device()) => {
            kernels::fused_layer_norm(x, norm.gamma.val(), beta.val(), EPSILON as f32)
        }
        _ => norm.forward(x),
    }
}
