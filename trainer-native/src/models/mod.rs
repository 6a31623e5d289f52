//! Opening saved models: checkpoints and exports to evaluate, checkpoints to prune.

pub mod model_source;
pub mod prunable;
