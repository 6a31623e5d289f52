//! One module per subcommand: its arguments (clap) and what it does, composed from the
//! engine and the folders beside this one.

pub mod bench;
pub mod bench_pipeline;
pub mod compare;
pub mod corpus;
pub mod download;
pub mod eval;
pub mod fbank;
pub mod logits;
pub mod prune;
pub mod slim;
pub mod sweep;
pub mod train;
pub mod trajectories;
pub mod wer;
