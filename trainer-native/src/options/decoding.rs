//! `--decoder` and its knobs, shared by `train` and `eval`.

use clap::{Args, ValueEnum};
use prunelab_engine::decode::{BeamConfig, Decoder, LmConfig};

use crate::data::corpus_source::CorpusSource;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DecoderChoice {
    /// Argmax per frame: no search, no word knowledge.
    Greedy,
    /// Prefix beam search over characters, no word knowledge.
    Beam,
    /// Beam search restricted to the words of the train transcripts, scored with a word bigram
    /// interpolated with a class bigram, both trained on the same transcripts.
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
    /// Weight of the language model's log-probability (lexicon).
    #[arg(long, default_value_t = BeamConfig::default().lm_weight)]
    lm_weight: f32,
    /// Score added per word (lexicon).
    #[arg(long, default_value_t = BeamConfig::default().word_bonus)]
    word_bonus: f32,
    /// Word classes the language model induces from the train transcripts (lexicon).
    #[arg(long, default_value_t = LmConfig::default().classes, value_parser = parse_classes)]
    lm_classes: usize,
    /// Share of the class bigram in the language model, 0 (word bigram alone) to 1 (lexicon).
    #[arg(long, default_value_t = LmConfig::default().class_share, value_parser = parse_share)]
    lm_class_share: f64,
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
                let lm = LmConfig {
                    classes: self.lm_classes,
                    class_share: self.lm_class_share,
                };
                Decoder::closed_vocabulary(transcripts.iter().map(String::as_str), config, lm)
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

fn parse_classes(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(classes) if (1..=1000).contains(&classes) => Ok(classes),
        _ => Err(format!("{text:?} is not a number of word classes between 1 and 1000")),
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err(format!("{text:?} is not a share between 0 and 1")),
    }
}
