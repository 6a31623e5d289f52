//! Activations shared by the fused kernels.

use cubecl::prelude::*;

/// The logistic function 1 / (1 + e^(−z)).
#[cube]
pub(super) fn sigmoid<F: Float>(z: F) -> F {
    F::new(1.0) / (F::new(1.0) + (-z).exp())
}

/// What a gated layer applies to `h + b` before its gate (`swish_gate.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateActivation {
    /// `z · sigmoid(z)`: the feed-forward module's hidden layer.
    Swish,
    /// `z`: the attention's projections.
    Identity,
}
