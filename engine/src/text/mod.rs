//! Text: transcript normalisation, the character tokenizer, and sclite-style scoring (with the
//! optional rules for transcripts a person brings).
//!
//! Nothing here knows about audio or models; it is shared by training, evaluation and the CLI.

mod normalize;
mod scoring;
mod tokenizer;
mod transcripts;
mod wer;

pub use normalize::{normalize_for_alphabet, normalize_transcript, unwritable_character_problem};
pub use scoring::ScoringRules;
pub use tokenizer::{BLANK, CharTokenizer, SPACE};
pub use transcripts::{
    MAX_TRANSCRIPT_CHARS, ParsedTranscripts, TranscriptLine, TranscriptLineError, parse_transcript_lines,
};
pub use wer::{Alignment, EditCounts, ErrorKind, align_words, score_chars, score_words};
