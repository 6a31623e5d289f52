//! Opening saved models (checkpoints and exports to evaluate, checkpoints to prune) and timing
//! them.

pub mod model_source;
pub mod prunable;
pub mod timing;

use std::path::Path;

use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::store::decode_checkpoint;
use prunelab_engine::train::TrainerState;

/// The training checkpoint at `path`; errors name the file.
pub fn read_checkpoint(path: &Path) -> Result<TrainerState, String> {
    let name = path.display().to_string();
    let bytes = read_bounded(path, limits::CHECKPOINT, "checkpoint").map_err(|e| e.to_string())?;
    decode_checkpoint(&bytes, &name).map_err(|e| e.to_string())
}
