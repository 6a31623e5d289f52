//! Opening saved models (checkpoints and exports to evaluate, checkpoints to prune) and timing
//! them.

pub mod model_source;
pub mod prunable;
pub mod timing;
