//! The decoder an evaluation uses: greedy, or beam search over a closed vocabulary.

use super::beam::{BeamConfig, WordModel, prefix_beam_search};
use super::greedy::greedy_ctc;
use super::language_model::{LanguageModel, LmConfig};
use super::lexicon::{Lexicon, WordId};
use crate::text::{CharTokenizer, SPACE};

/// How logits become token ids.
#[derive(Debug, Clone, Default)]
pub enum Decoder {
    /// Best path: argmax per frame (what training reports, and the only choice without text).
    #[default]
    Greedy,
    /// Prefix beam search; with words, restricted to a lexicon and scored with a language model.
    Beam {
        config: BeamConfig,
        words: Option<(Lexicon, LanguageModel)>,
    },
}

impl Decoder {
    /// Beam search over the words of `transcripts` (normalised text, e.g. the train split),
    /// scored by a language model trained on the same text (see [`LanguageModel`]). Words the
    /// tokenizer cannot spell are skipped.
    pub fn closed_vocabulary<'a>(
        transcripts: impl IntoIterator<Item = &'a str>,
        config: BeamConfig,
        lm: LmConfig,
    ) -> Self {
        let (lexicon, sentences) = lexicon_and_sentences(transcripts);
        let lm = LanguageModel::train(lexicon.len(), &sentences, lm);
        Decoder::Beam {
            config,
            words: Some((lexicon, lm)),
        }
    }

    /// Token ids of one utterance from row-major `[frames, vocab]` logits.
    pub fn decode(&self, logits: &[f32], frames: usize, vocab: usize) -> Vec<usize> {
        match self {
            Decoder::Greedy => greedy_ctc(logits, frames, vocab),
            Decoder::Beam { config, words } => {
                let model = words
                    .as_ref()
                    .map_or_else(WordModel::default, |(lexicon, lm)| WordModel {
                        lexicon: Some(lexicon),
                        lm: Some(lm),
                    });
                prefix_beam_search(logits, frames, vocab, SPACE, config, model)
            }
        }
    }

    /// A short label for reports ("greedy", "beam 16 + lexicon + bigram (0.8, 1.0)").
    pub fn describe(&self) -> String {
        match self {
            Decoder::Greedy => "greedy".into(),
            Decoder::Beam { config, words: None } => format!("beam {}", config.beam),
            Decoder::Beam {
                config,
                words: Some((lexicon, lm)),
            } => {
                let model = match lm.classes() {
                    0 => "bigram".to_string(),
                    k => format!("bigram + {k}-class bigram (share {})", lm.class_share()),
                };
                format!(
                    "beam {} + {}-word lexicon + {model} (weight {}, bonus {})",
                    config.beam,
                    lexicon.len(),
                    config.lm_weight,
                    config.word_bonus
                )
            }
        }
    }
}

/// The lexicon of the words in `transcripts` and the transcripts as word-id sequences.
fn lexicon_and_sentences<'a>(transcripts: impl IntoIterator<Item = &'a str>) -> (Lexicon, Vec<Vec<WordId>>) {
    let mut spellings: Vec<Vec<usize>> = Vec::new();
    let mut ids = std::collections::HashMap::<&str, WordId>::new();
    let mut sentences: Vec<Vec<WordId>> = Vec::new();
    for text in transcripts {
        let mut sentence = Vec::new();
        for word in text.split_whitespace() {
            let id = match ids.get(word) {
                Some(&id) => id,
                None => {
                    let Ok(spelling) = CharTokenizer.encode(word) else {
                        continue;
                    };
                    spellings.push(spelling);
                    let id = (spellings.len() - 1) as WordId;
                    ids.insert(word, id);
                    id
                }
            };
            sentence.push(id);
        }
        sentences.push(sentence);
    }
    (Lexicon::new(spellings.iter().map(Vec::as_slice)), sentences)
}
