//! File formats, all loadable from bytes so the browser can open them too:
//! the training checkpoint (config, feature statistics, weights, optimiser state, step).

mod checkpoint;

pub use checkpoint::{StoreError, decode_checkpoint, encode_checkpoint, load_inference_model};
