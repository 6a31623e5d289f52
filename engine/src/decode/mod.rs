//! CTC decoding on host memory: greedy best path and prefix beam search, optionally over a
//! closed vocabulary with a word language model.

mod beam;
mod decoder;
mod greedy;
mod language_model;
mod lexicon;
mod word_classes;

pub use beam::{BeamConfig, WordModel, prefix_beam_search};
pub use decoder::Decoder;
pub use greedy::greedy_ctc;
pub use language_model::{LanguageModel, LmConfig};
pub use lexicon::{Lexicon, WordBigram, WordId};
pub use word_classes::WordClasses;
