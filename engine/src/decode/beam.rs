//! CTC prefix beam search, optionally constrained to a lexicon and scored with a word language model.
//!
//! Each hypothesis is a collapsed token prefix with two probabilities: ending in blank and
//! ending in its last token (Hannun et al. 2014, "First-pass large vocabulary continuous speech
//! recognition using bi-directional recurrent DNNs", Algorithm 1). With a lexicon, a letter may
//! only extend a prefix of some word and a space may only close a whole word; the LM score
//! `lm_weight · ln P(word | previous) + word_bonus` is added when a word closes.

use std::collections::HashMap;

use super::language_model::LanguageModel;
use super::lexicon::{LEXICON_ROOT, Lexicon, WordId};
use crate::text::BLANK;

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeamConfig {
    /// Hypotheses kept after each frame.
    pub beam: usize,
    /// Weight of the word LM's natural-log probability.
    pub lm_weight: f32,
    /// Added per closed word; counters the LM's preference for fewer words.
    pub word_bonus: f32,
    /// Tokens more than this many nats below the frame's best are not tried (speed only).
    pub token_cutoff: f32,
}

impl Default for BeamConfig {
    /// The LM weight and word bonus were chosen on the built-in corpus's dev split (a 4 × 4
    /// grid, docs/results.md); 1.0 is also the unscaled language model.
    fn default() -> Self {
        Self {
            beam: 16,
            lm_weight: 1.0,
            word_bonus: 1.0,
            token_cutoff: 12.0,
        }
    }
}

/// What constrains and scores the words, beyond the acoustics.
#[derive(Debug, Clone, Copy, Default)]
pub struct WordModel<'a> {
    pub lexicon: Option<&'a Lexicon>,
    /// Only used together with a lexicon (it scores word ids).
    pub lm: Option<&'a LanguageModel>,
}

#[derive(Debug, Clone)]
struct Hypothesis {
    /// ln P(prefix, path ends in blank) and ln P(prefix, path ends in the last token).
    blank: f32,
    token: f32,
    /// Sum of word-level scores so far (LM and bonus).
    words: f32,
    /// Trie node of the word being spelled (root between words).
    node: usize,
    previous_word: Option<WordId>,
}

impl Hypothesis {
    fn acoustic(&self) -> f32 {
        log_add(self.blank, self.token)
    }

    fn total(&self) -> f32 {
        self.acoustic() + self.words
    }
}

/// Decodes one utterance from row-major `[frames, vocab]` logits (normalised per frame here).
/// `space` is the token that separates words. Returns the best collapsed token sequence; when
/// the lexicon admits no path at all, the best unconstrained path is returned.
pub fn prefix_beam_search(
    logits: &[f32],
    frames: usize,
    vocab: usize,
    space: usize,
    config: &BeamConfig,
    model: WordModel,
) -> Vec<usize> {
    let search = Search { space, config, model };
    let mut beam: Vec<(Vec<usize>, Hypothesis)> = vec![(Vec::new(), search.start())];
    for row in logits.chunks_exact(vocab).take(frames) {
        let log_probs = log_softmax(row);
        beam = search.advance(&beam, &log_probs);
    }
    let best = beam
        .iter()
        .filter_map(|(prefix, h)| search.finish(h).map(|score| (prefix, score)))
        .max_by(|a, b| a.1.total_cmp(&b.1));
    match best {
        Some((prefix, _)) => prefix.clone(),
        None if model.lexicon.is_some() => {
            prefix_beam_search(logits, frames, vocab, space, config, WordModel::default())
        }
        None => Vec::new(),
    }
}

struct Search<'a> {
    space: usize,
    config: &'a BeamConfig,
    model: WordModel<'a>,
}

impl Search<'_> {
    fn start(&self) -> Hypothesis {
        Hypothesis {
            blank: 0.0,
            token: f32::NEG_INFINITY,
            words: 0.0,
            node: LEXICON_ROOT,
            previous_word: None,
        }
    }

    /// One frame: every hypothesis either stays (blank or a repeat of its last token) or grows.
    fn advance(&self, beam: &[(Vec<usize>, Hypothesis)], log_probs: &[f32]) -> Vec<(Vec<usize>, Hypothesis)> {
        let best = log_probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut next: HashMap<Vec<usize>, Hypothesis> = HashMap::with_capacity(beam.len() * 4);
        for (prefix, h) in beam {
            let stay = next.entry(prefix.clone()).or_insert_with(|| Hypothesis {
                blank: f32::NEG_INFINITY,
                token: f32::NEG_INFINITY,
                ..h.clone()
            });
            stay.blank = log_add(stay.blank, h.acoustic() + log_probs[BLANK]);
            if let Some(&last) = prefix.last() {
                stay.token = log_add(stay.token, h.token + log_probs[last]);
            }
            for (token, &lp) in log_probs.iter().enumerate() {
                if token == BLANK || lp < best - self.config.token_cutoff {
                    continue;
                }
                let Some(grown) = self.grow(h, token) else { continue };
                // A repeated token only starts a new symbol after a blank.
                let from = if prefix.last() == Some(&token) {
                    h.blank
                } else {
                    h.acoustic()
                };
                let mut key = prefix.clone();
                key.push(token);
                let entry = next.entry(key).or_insert(Hypothesis {
                    blank: f32::NEG_INFINITY,
                    token: f32::NEG_INFINITY,
                    ..grown
                });
                entry.token = log_add(entry.token, from + lp);
            }
        }
        let mut ranked: Vec<(Vec<usize>, Hypothesis)> = next.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total().total_cmp(&a.1.total()).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(self.config.beam.max(1));
        ranked
    }

    /// The word-level state after appending `token`, or `None` if the word model forbids it.
    fn grow(&self, h: &Hypothesis, token: usize) -> Option<Hypothesis> {
        let mut grown = h.clone();
        let Some(lexicon) = self.model.lexicon else {
            // Without a lexicon, only forbid empty words (leading or doubled spaces).
            let in_word = h.node != LEXICON_ROOT;
            if token == self.space && !in_word {
                return None;
            }
            grown.node = if token == self.space {
                LEXICON_ROOT
            } else {
                LEXICON_ROOT + 1
            };
            return Some(grown);
        };
        if token == self.space {
            let word = lexicon.word_at(h.node)?;
            grown.words += self.word_score(h.previous_word, Some(word));
            grown.previous_word = Some(word);
            grown.node = LEXICON_ROOT;
        } else {
            grown.node = lexicon.child(h.node, token)?;
        }
        Some(grown)
    }

    fn word_score(&self, previous: Option<WordId>, word: Option<WordId>) -> f32 {
        let lm = self.model.lm.map_or(0.0, |lm| lm.log_prob(previous, word));
        let bonus = if word.is_some() { self.config.word_bonus } else { 0.0 };
        self.config.lm_weight * lm + bonus
    }

    /// Final score: close the word being spelled and the sentence; `None` if the word is not whole.
    fn finish(&self, h: &Hypothesis) -> Option<f32> {
        let Some(lexicon) = self.model.lexicon else {
            return Some(h.total());
        };
        let mut score = h.total();
        let mut previous = h.previous_word;
        if h.node != LEXICON_ROOT {
            let word = lexicon.word_at(h.node)?;
            score += self.word_score(previous, Some(word));
            previous = Some(word);
        }
        Some(score + self.word_score(previous, None))
    }
}

fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let log_sum = row.iter().map(|&x| (x - max).exp()).sum::<f32>().ln() + max;
    row.iter().map(|&x| x - log_sum).collect()
}

fn log_add(a: f32, b: f32) -> f32 {
    if a == f32::NEG_INFINITY {
        return b;
    }
    if b == f32::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: usize = 1;

    /// Total CTC probability of every collapsed labelling, by enumerating all alignments.
    fn brute_force_best(probs: &[Vec<f32>], vocab: usize) -> Vec<usize> {
        let frames = probs.len();
        let mut totals: HashMap<Vec<usize>, f32> = HashMap::new();
        for code in 0..vocab.pow(frames as u32) {
            let path: Vec<usize> = (0..frames).map(|t| code / vocab.pow(t as u32) % vocab).collect();
            let p: f32 = path.iter().enumerate().map(|(t, &k)| probs[t][k]).product();
            let mut labels = Vec::new();
            let mut previous = BLANK;
            for &k in &path {
                if k != BLANK && k != previous {
                    labels.push(k);
                }
                previous = k;
            }
            *totals.entry(labels).or_default() += p;
        }
        totals.into_iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap().0
    }

    fn logits_of(probs: &[Vec<f32>]) -> Vec<f32> {
        probs.iter().flatten().map(|p| p.ln()).collect()
    }

    #[test]
    fn wide_beam_finds_the_most_probable_labelling() {
        // Greedy picks [2] here (blank-2-blank-... paths split the mass of [2,2]); enumeration decides.
        let probs = vec![
            vec![0.4, 0.0001, 0.6 - 0.0001],
            vec![0.55, 0.0001, 0.45 - 0.0001],
            vec![0.4, 0.0001, 0.6 - 0.0001],
            vec![0.3, 0.3, 0.4],
        ];
        let config = BeamConfig {
            beam: 64,
            token_cutoff: 100.0,
            ..BeamConfig::default()
        };
        // No token is a word separator here, so the search is plain CTC, like the enumeration.
        let found = prefix_beam_search(&logits_of(&probs), 4, 3, usize::MAX, &config, WordModel::default());
        assert_eq!(found, brute_force_best(&probs, 3));
    }

    #[test]
    fn lexicon_snaps_a_misspelling_to_a_word() {
        // Tokens: 0 blank, 1 space, 2 'A', 3 'B', 4 'C'. Acoustics favour "AC" slightly; only "AB" is a word.
        let frame = |p: [f32; 5]| p.to_vec();
        let probs = vec![
            frame([0.05, 0.01, 0.9, 0.02, 0.02]),
            frame([0.05, 0.01, 0.02, 0.44, 0.48]),
        ];
        let unconstrained = prefix_beam_search(
            &logits_of(&probs),
            2,
            5,
            SPACE,
            &BeamConfig::default(),
            WordModel::default(),
        );
        assert_eq!(unconstrained, vec![2, 4]);
        let words: Vec<Vec<usize>> = vec![vec![2, 3]];
        let lexicon = Lexicon::new(words.iter().map(Vec::as_slice));
        let model = WordModel {
            lexicon: Some(&lexicon),
            lm: None,
        };
        let constrained = prefix_beam_search(&logits_of(&probs), 2, 5, SPACE, &BeamConfig::default(), model);
        assert_eq!(constrained, vec![2, 3]);
    }

    #[test]
    fn bigram_breaks_an_acoustic_tie_towards_the_seen_word_pair() {
        // Words: 0 = "A", 1 = "B", 2 = "C". Training text always says "A C"; the second word is a coin flip acoustically.
        let words: Vec<Vec<usize>> = vec![vec![2], vec![3], vec![4]];
        let lexicon = Lexicon::new(words.iter().map(Vec::as_slice));
        let sentences: Vec<Vec<WordId>> = vec![vec![0, 2]; 5];
        let plain_bigram = crate::decode::LmConfig {
            class_share: 0.0,
            ..Default::default()
        };
        let lm = LanguageModel::train(3, &sentences, plain_bigram);
        let probs = vec![
            vec![0.02, 0.02, 0.92, 0.02, 0.02],
            vec![0.02, 0.92, 0.02, 0.02, 0.02],
            vec![0.02, 0.02, 0.02, 0.47, 0.47],
        ];
        let model = WordModel {
            lexicon: Some(&lexicon),
            lm: Some(&lm),
        };
        let found = prefix_beam_search(&logits_of(&probs), 3, 5, SPACE, &BeamConfig::default(), model);
        assert_eq!(found, vec![2, SPACE, 4]);
    }

    #[test]
    fn falls_back_when_the_beam_ends_inside_a_word() {
        // "A" only starts the word "AB"; with a beam of one, the half-spelled word is all that survives.
        let probs = vec![vec![0.01, 0.01, 0.96, 0.01, 0.01]];
        let words: Vec<Vec<usize>> = vec![vec![2, 3]];
        let lexicon = Lexicon::new(words.iter().map(Vec::as_slice));
        let model = WordModel {
            lexicon: Some(&lexicon),
            lm: None,
        };
        let config = BeamConfig {
            beam: 1,
            ..BeamConfig::default()
        };
        assert_eq!(
            prefix_beam_search(&logits_of(&probs), 1, 5, SPACE, &config, model),
            vec![2]
        );
    }
}
