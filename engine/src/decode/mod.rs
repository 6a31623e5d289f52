//! CTC decoding on host memory: greedy best path (prefix beam search is a later issue).

mod greedy;

pub use greedy::greedy_ctc;
