//! `--decoder` and its knobs, shared by `train` and `eval`.

use clap::{Args, ValueEnum};
use prunelab_engine::decode::{BeamConfig, Decoder};

use crate::corpus_source::CorpusSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecoderChoice {
    /// Argmax per frame: no search, no word knowledge.
    Greedy,
    /// Prefix beam search over characters, no word knowledge.
    Beam,
    /// Beam search restricted to the words of the train transcripts, scored with a word bigram
    /// trained on the same transcripts.
    Lexicon,
}

#[derive(Args, Clone, Debug)]
pub struct DecodeArgs {
    /// How logits become text (greedy is always reported too). Default: lexicon on the built-in
    /// corpus; on LibriSpeech, beam when --beam is given and greedy otherwise.
    #[arg(long, value_enum)]
    decoder: Option<DecoderChoice>,
    /// Hypotheses kept per frame (beam and lexicon; default 16).
    #[arg(long, value_parser = parse_beam)]
    beam: Option<usize>,
    /// Weight of the bigram's log-probability (lexicon).
    #[arg(long, default_value_t = BeamConfig::default().lm_weight)]
    lm_weight: f32,
    /// Score added per word (lexicon).
    #[arg(long, default_value_t = BeamConfig::default().word_bonus)]
    word_bonus: f32,
}

impl DecodeArgs {
    /// Builds the decoder; the lexicon reads the train split's transcripts (no audio).
    pub fn build(&self, corpus: &CorpusSource) -> Result<Decoder, String> {
        if !self.lm_weight.is_finite() || self.lm_weight < 0.0 || !self.word_bonus.is_finite() {
            return Err(format!(
                "--lm-weight must be a finite number ≥ 0 and --word-bonus finite (got {} and {})",
                self.lm_weight, self.word_bonus
            ));
        }
        let config = BeamConfig {
            beam: self.beam.unwrap_or(BeamConfig::default().beam),
            lm_weight: self.lm_weight,
            word_bonus: self.word_bonus,
            ..BeamConfig::default()
        };
        // A lexicon from LibriSpeech's training text would be a closed 89k-word vocabulary that
        // the standard benchmark does not use; there, character search is the default.
        let choice = self.decoder.unwrap_or(match (corpus, self.beam) {
            (CorpusSource::LibriSpeech { .. }, Some(_)) => DecoderChoice::Beam,
            (CorpusSource::LibriSpeech { .. }, None) => DecoderChoice::Greedy,
            _ => DecoderChoice::Lexicon,
        });
        Ok(match choice {
            DecoderChoice::Greedy => Decoder::Greedy,
            DecoderChoice::Beam => Decoder::Beam { config, words: None },
            DecoderChoice::Lexicon => {
                let transcripts = corpus.transcripts("train")?;
                Decoder::closed_vocabulary(transcripts.iter().map(String::as_str), config)
            }
        })
    }
}

fn parse_beam(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(beam) if (1..=4096).contains(&beam) => Ok(beam),
        _ => Err(format!("{text:?} is not a beam width between 1 and 4096")),
    }
}
