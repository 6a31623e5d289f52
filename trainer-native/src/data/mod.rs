//! Corpora as the CLI reads them: choosing a corpus, loading or streaming it (featurised on
//! worker threads), synthesising the built-in one, and scoring corpora too large to hold.

pub mod corpus_source;
pub mod download;
pub mod eval_stream;
pub mod fixture;
pub mod stream;
pub mod synth;
pub mod train_data;
