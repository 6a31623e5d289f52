//! The word language model of closed-vocabulary decoding: a word bigram interpolated with a
//! class bigram over word classes induced from the same training text.
//!
//! `P(w | v) = (1 − λ) · P_word(w | v) + λ · P(class(w) | class(v)) · P(w | class(w))`.
//! Both parts are distributions over the vocabulary plus end-of-sentence, so the mixture is
//! one too. `λ = 0` is the plain word bigram.

use super::lexicon::{WordBigram, WordId};
use super::word_classes::WordClasses;

/// How the language model is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LmConfig {
    /// Word classes to induce (ignored when `class_share` is 0).
    pub classes: usize,
    /// λ: the class bigram's share of each probability.
    pub class_share: f64,
}

impl Default for LmConfig {
    /// Chosen by the perplexity of held-out training sentences, never dev or test (see
    /// docs/results.md and `cargo run --example lm_heldout`).
    fn default() -> Self {
        Self {
            classes: 16,
            class_share: 0.95,
        }
    }
}

/// Passes of the exchange algorithm; it settles well before this on a few thousand words.
const MAX_PASSES: usize = 30;

/// A class bigram: `P(b | a)` over classes (Witten–Bell against a uniform class distribution)
/// times the within-class word frequency `P(w | b)`.
#[derive(Debug, Clone)]
struct ClassBigram {
    classes: WordClasses,
    /// `[(k + 1)²]` smoothed `ln P(b | a)`, the boundary class last.
    transitions: Vec<f64>,
    /// `ln P(w | class(w))` per word.
    emissions: Vec<f64>,
}

impl ClassBigram {
    fn train(vocabulary: usize, sentences: &[Vec<WordId>], classes: usize) -> Self {
        let classes = WordClasses::induce(vocabulary, sentences, classes, MAX_PASSES);
        let width = classes.classes() + 1;
        let mut pairs = vec![0.0f64; width * width];
        let mut word_counts = vec![0.0f64; vocabulary];
        for sentence in sentences {
            let mut previous = classes.class_of(None);
            for word in sentence.iter().map(|&w| Some(w)).chain(std::iter::once(None)) {
                let class = classes.class_of(word);
                pairs[previous * width + class] += 1.0;
                if let Some(w) = word {
                    word_counts[w as usize] += 1.0;
                }
                previous = class;
            }
        }
        let mut transitions = vec![0.0; width * width];
        for a in 0..width {
            let row = &pairs[a * width..(a + 1) * width];
            let seen: f64 = row.iter().sum();
            let types = row.iter().filter(|&&n| n > 0.0).count() as f64;
            for b in 0..width {
                let p = if seen == 0.0 {
                    1.0 / width as f64
                } else {
                    (row[b] + types / width as f64) / (seen + types)
                };
                transitions[a * width + b] = p.ln();
            }
        }
        // Add-one within each class, so a vocabulary word never seen in training still has mass.
        let mut class_totals = vec![0.0f64; width];
        let mut class_sizes = vec![0.0f64; width];
        for (w, &n) in word_counts.iter().enumerate() {
            let class = classes.class_of(Some(w as WordId));
            class_totals[class] += n;
            class_sizes[class] += 1.0;
        }
        let emissions = word_counts
            .iter()
            .enumerate()
            .map(|(w, &n)| {
                let class = classes.class_of(Some(w as WordId));
                ((n + 1.0) / (class_totals[class] + class_sizes[class])).ln()
            })
            .collect();
        Self {
            classes,
            transitions,
            emissions,
        }
    }

    fn log_prob(&self, previous: Option<WordId>, word: Option<WordId>) -> f64 {
        let width = self.classes.classes() + 1;
        let (a, b) = (self.classes.class_of(previous), self.classes.class_of(word));
        let emission = word.map_or(0.0, |w| self.emissions[w as usize]);
        self.transitions[a * width + b] + emission
    }
}

/// The decoder's word model: see the module documentation.
#[derive(Debug, Clone)]
pub struct LanguageModel {
    word: WordBigram,
    class: Option<ClassBigram>,
    class_share: f64,
}

impl LanguageModel {
    /// Trains on `sentences` (word-id sequences) over a vocabulary of `vocabulary` words.
    pub fn train(vocabulary: usize, sentences: &[Vec<WordId>], config: LmConfig) -> Self {
        let class_share = config.class_share.clamp(0.0, 1.0);
        Self {
            word: WordBigram::train(vocabulary, sentences.iter().map(Vec::as_slice)),
            class: (class_share > 0.0).then(|| ClassBigram::train(vocabulary, sentences, config.classes)),
            class_share,
        }
    }

    /// `ln P(word | previous)`; `previous = None` is the sentence start, `word = None` the end.
    pub fn log_prob(&self, previous: Option<WordId>, word: Option<WordId>) -> f32 {
        let word_p = f64::from(self.word.log_prob(previous, word)).exp();
        let p = match &self.class {
            Some(class) => (1.0 - self.class_share) * word_p + self.class_share * class.log_prob(previous, word).exp(),
            None => word_p,
        };
        p.ln() as f32
    }

    /// Word classes induced (0 for a plain word bigram).
    pub fn classes(&self) -> usize {
        self.class.as_ref().map_or(0, |c| c.classes.classes())
    }

    /// λ, the class bigram's share.
    pub fn class_share(&self) -> f64 {
        self.class_share
    }

    /// Mean `−ln P` per predicted word (end-of-sentence included) of `sentences`: the log of the
    /// perplexity, for choosing the configuration on held-out text.
    pub fn cross_entropy(&self, sentences: &[Vec<WordId>]) -> f64 {
        let (mut total, mut count) = (0.0f64, 0usize);
        for sentence in sentences {
            let mut previous = None;
            for word in sentence.iter().map(|&w| Some(w)).chain(std::iter::once(None)) {
                total -= f64::from(self.log_prob(previous, word));
                count += 1;
                previous = word;
            }
        }
        total / count.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_text() -> Vec<Vec<WordId>> {
        vec![vec![0, 2, 4], vec![1, 3, 5], vec![0, 3, 4], vec![1, 2, 5, 5], vec![6]]
    }

    #[test]
    fn the_mixture_is_a_distribution_in_every_context() {
        let lm = LanguageModel::train(
            8,
            &toy_text(),
            LmConfig {
                classes: 3,
                class_share: 0.4,
            },
        );
        for previous in [None, Some(0), Some(3), Some(5), Some(7)] {
            let mut total: f64 = (0..8).map(|w| f64::from(lm.log_prob(previous, Some(w))).exp()).sum();
            total += f64::from(lm.log_prob(previous, None)).exp();
            assert!((total - 1.0).abs() < 1e-5, "context {previous:?} sums to {total}");
        }
    }

    #[test]
    fn a_zero_share_is_the_word_bigram() {
        let text = toy_text();
        let lm = LanguageModel::train(
            8,
            &text,
            LmConfig {
                classes: 3,
                class_share: 0.0,
            },
        );
        let bigram = WordBigram::train(8, text.iter().map(Vec::as_slice));
        assert_eq!(lm.classes(), 0);
        for (previous, word) in [(None, Some(0)), (Some(2), Some(4)), (Some(5), None), (Some(7), Some(1))] {
            assert!((lm.log_prob(previous, word) - bigram.log_prob(previous, word)).abs() < 1e-6);
        }
    }

    #[test]
    fn classes_generalise_to_unseen_pairs_of_seen_kinds() {
        // "1 2" never occurs, but 1 behaves like 0 and 2 like 3, and "0 3" does occur: the class
        // part gives the unseen pair more than the word bigram alone does.
        let mut text = Vec::new();
        for _ in 0..5 {
            text.extend([vec![0, 2, 4], vec![0, 3, 4], vec![1, 3, 4]]);
        }
        let config = LmConfig {
            classes: 3,
            class_share: 0.5,
        };
        let mixed = LanguageModel::train(6, &text, config);
        let plain = LanguageModel::train(
            6,
            &text,
            LmConfig {
                class_share: 0.0,
                ..config
            },
        );
        assert!(mixed.log_prob(Some(1), Some(2)) > plain.log_prob(Some(1), Some(2)));
        assert!(mixed.cross_entropy(&[vec![1, 2, 4]]) < plain.cross_entropy(&[vec![1, 2, 4]]));
    }
}
