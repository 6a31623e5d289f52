//! Activations shared by the fused kernels.

use cubecl::prelude::*;

/// The logistic function 1 / (1 + e^(−z)).
#[cube]
pub(super) fn sigmoid<F: Float>(z: F) -> F {
    F::new(1.0) / (F::new(1.0) + (-z).exp())
}
