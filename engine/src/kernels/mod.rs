//! Fused operations with hand-written backward passes: the training step's second path (see
//! `docs/architecture.md`, "Two ways to run one step"). On a cube backend (wgpu natively and in
//! the browser) each operation is a few `cubecl` kernels and its backward is written by hand;
//! everywhere else, and whenever the reference is asked for, the same function is composed from
//! burn's operations and differentiated by burn's autodiff. Parity tests compare the two on
//! random, padded and odd shapes (`engine/tests/fused_ops.rs`).
//!
//! The operations reach burn through a backend extension (`ops.rs`): one trait, implemented for
//! the cube backend (the kernels), for autodiff (the backward passes) and, in the browser, for
//! burn's fusion backend (which queues them like any other operation).
//!
//! So far: LayerNorm (`layer_norm.rs`). Not yet used by the model's forward pass.
//!
//! Floor 0: uses burn and cubecl only.

mod layer_norm;
mod ops;

pub use ops::{fused_layer_norm, runs_fused};
