//! File formats, all loadable from bytes so the browser can open them too: the training
//! checkpoint (config, feature statistics, weights, gates, optimiser state, step) and the run
//! trace (retention scores over training, metrics).

mod checkpoint;
mod trace;

pub use checkpoint::{StoreError, decode_checkpoint, encode_checkpoint, load_gates, load_inference_model};
pub use trace::{Trace, TraceSite, decode_trace, encode_trace};
