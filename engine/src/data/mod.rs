//! Corpora: the LibriSpeech layout reader, the packed built-in corpus, the sentence generator
//! behind it, feature loading with per-item error reporting, and batching by duration.

mod batch;
mod index;
mod layout;
mod load;
mod pack;
mod sentences;
mod share;
mod stream_plan;

pub use batch::{Batch, BatchPlan, ShapeBuckets, make_batches, make_batches_by_length};
pub use index::{CorpusIndex, IndexEntry, MAX_UTTERANCE_SECONDS, TooLong, check_utterance_length, index_subsets};
pub use layout::{LayoutEntry, LayoutScan, scan_subset, write_transcript_file};
pub use load::{
    LoadOptions, LoadedSplit, RawItem, ShorterThanOneFrame, Utterance, load_indexed, load_items, load_layout_subset,
    load_pack_split, recorded_id,
};
pub use pack::{CorpusPack, PackEntry, PackError, PackHeader, is_librispeech_id, write_pack};
pub use sentences::{MAX_WORDS, MIN_WORDS, SentenceGenerator, vocabulary};
pub use share::keep_share;
pub use stream_plan::{PlannedItem, StepCursor, StreamPlan};

use std::path::Path;

/// The splits of the built-in corpus: `dev` holds held-out sentences spoken by training voices,
/// `test` holds held-out voices.
pub const SPLITS: [&str; 3] = ["train", "dev", "test"];

/// One problem with one corpus item (a file, a transcript line), named by path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct CorpusIssue {
    pub location: String,
    pub problem: String,
}

impl CorpusIssue {
    pub fn new(location: &Path, problem: String) -> Self {
        Self {
            location: location.display().to_string(),
            problem,
        }
    }
}
