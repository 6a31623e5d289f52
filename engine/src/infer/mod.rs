//! Inference: a batch of utterances as tensors (`batch`, which the training step uses too),
//! scoring a model on a corpus with any decoder (`evaluate`), what models hear in a recording
//! (`hear`), a run's model or cut costed and scored in one go (`score`), and timing a dense
//! model against a cut one (`timing`).
//!
//! Floor 2: uses floors 0 and 1 (features, text scoring, decoders, the model, corpora) and
//! `prune`'s costs beside it; `train` and the front doors use it, `prune` does not.

mod batch;
mod evaluate;
mod hear;
mod score;
mod timing;

pub use batch::{Prepared, prepare_batch};
pub use evaluate::{EvalReport, UtteranceResult, evaluate, summarise};
pub use hear::{HearError, MAX_RECORDING_SECONDS, MIN_RECORDING_SECONDS, recording, transcribe};
pub use score::{ModelScore, Scorer};
pub use timing::{Clock, DevTimer, PairedTiming};
