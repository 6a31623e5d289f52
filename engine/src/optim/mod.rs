//! Optimisers and the learning-rate schedule: Adam(W) over a whole module in flat buffers
//! (`flat_adam`, its buffer layout in `layout`, its saved state in `saved`), burn's per-tensor
//! optimiser for runs restored from checkpoints written before it (`optimiser`), and the
//! warm-up-then-cosine schedule with its settings (`schedule`).
//!
//! Floor 1: uses only burn and floor 0 (`container`, `readback`).

mod flat_adam;
mod layout;
mod optimiser;
mod saved;
mod schedule;

pub use flat_adam::{FlatAdam, FlatAdamConfig};
pub use optimiser::{OptimStateError, Optimiser};
pub use saved::FlatStateError;
pub use schedule::{OptimConfig, learning_rate};
