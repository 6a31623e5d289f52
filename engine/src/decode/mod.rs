//! CTC decoding on host memory: greedy best path and prefix beam search, optionally over a
//! closed vocabulary with a word bigram.

mod beam;
mod decoder;
mod greedy;
mod lexicon;

pub use beam::{BeamConfig, WordModel, prefix_beam_search};
pub use decoder::Decoder;
pub use greedy::greedy_ctc;
pub use lexicon::{Lexicon, WordBigram, WordId};
