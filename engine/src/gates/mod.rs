//! Pruning gates: which unit vectors are gated, how their masks are drawn in training, what
//! they are at inference, and the penalty that pushes them towards zero.
//!
//! Gates know sites and unit counts, never model internals: they hand out one mask per site and
//! the training code passes those into the model's forward. The two kinds of gate (adaptive
//! dropout, L0's hard concrete) are types behind [`GateKind`]; [`GateConfig::gate_kind`] is the
//! one place that maps a [`Method`] to its kind.

mod adaptive_dropout;
mod config;
mod hard_concrete;
mod kind;
mod layout;
mod params;
mod site;
mod snapshot;
mod tensors;

pub use adaptive_dropout::{AdaptiveDropoutConfig, retention_of};
pub use config::{GateConfig, Method, limit};
pub use hard_concrete::{HardConcreteConfig, L0_KEEP_ABOVE};
pub use kind::GateKind;
pub use layout::GateLayout;
pub use params::Gates;
pub use site::{SiteKind, params_per_unit, site_units};
pub use snapshot::{GateSnapshot, PruningScores};
pub use tensors::GateTensors;

use burn::prelude::*;

use crate::kernels::UnitGate;

/// One value per site kind of a block (`None` where the site is not gated).
pub type PerSite<T> = [Option<T>; 5];

/// One block's gate values for a forward pass: unit masks of `[b or 1, 1, units]` per site
/// (values, or drawn by the fused layer that uses them) and, for L0, the whole-module gates
/// `[4]` (FFN1, attention, conv, FFN2).
#[derive(Debug, Clone, Default)]
pub struct BlockGateValues {
    pub sites: PerSite<UnitGate>,
    pub modules: Option<Tensor<1>>,
}
