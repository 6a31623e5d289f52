//! File formats, all loadable from bytes so the browser can open them too: the training
//! checkpoint (config, feature statistics, weights, gates, optimiser state, step) and the run
//! trace (retention scores over training, metrics), and the pruned-model export (safetensors
//! plus a JSON manifest, or both in one tar archive for a download from the page).

mod checkpoint;
mod export;
mod export_archive;
mod run_trace;
mod trace;

pub use checkpoint::{StoreError, decode_checkpoint, encode_checkpoint, load_gates, load_inference_model};
pub use export::{EXPORT_FORMAT, EXPORT_VERSION, ExportManifest, encode_weights, load_export, sample_export};
pub use export_archive::{archive_export_files, export_archive, read_export_archive};
pub use run_trace::{Recorded, TraceMismatch};
pub use trace::{Trace, TraceSite, decode_trace, encode_trace};
