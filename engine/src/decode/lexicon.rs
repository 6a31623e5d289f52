//! Closed-vocabulary decoding resources: a lexicon trie over token ids and a word bigram model.
//!
//! Both are built from training transcripts (already tokenised by the caller), the way a
//! LibriSpeech system builds its lexicon and n-gram LM from text that is not in dev or test.

use std::collections::HashMap;

/// Index of a word in a [`Lexicon`].
pub type WordId = u32;

#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// (token, child node) pairs; a handful per node, so a linear scan beats a map.
    children: Vec<(usize, usize)>,
    /// The word that ends at this node, if any.
    word: Option<WordId>,
}

/// A prefix tree of the allowed words, spelled in token ids (no spaces inside a word).
#[derive(Debug, Clone)]
pub struct Lexicon {
    nodes: Vec<TrieNode>,
    words: usize,
}

/// The trie node where every word starts.
pub const LEXICON_ROOT: usize = 0;

impl Lexicon {
    /// Builds the trie; word `i` of `spellings` gets id `i`. Empty spellings are ignored.
    pub fn new<'a>(spellings: impl IntoIterator<Item = &'a [usize]>) -> Self {
        let mut lexicon = Self {
            nodes: vec![TrieNode::default()],
            words: 0,
        };
        for spelling in spellings {
            let id = lexicon.words as WordId;
            lexicon.words += 1;
            if spelling.is_empty() {
                continue;
            }
            let mut node = LEXICON_ROOT;
            for &token in spelling {
                node = match lexicon.child(node, token) {
                    Some(next) => next,
                    None => {
                        lexicon.nodes.push(TrieNode::default());
                        let next = lexicon.nodes.len() - 1;
                        lexicon.nodes[node].children.push((token, next));
                        next
                    }
                };
            }
            lexicon.nodes[node].word.get_or_insert(id);
        }
        lexicon
    }

    /// Number of word ids handed out.
    pub fn len(&self) -> usize {
        self.words
    }

    pub fn is_empty(&self) -> bool {
        self.words == 0
    }

    /// The node reached from `node` by `token`, if some word continues that way.
    pub fn child(&self, node: usize, token: usize) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .find(|(t, _)| *t == token)
            .map(|&(_, next)| next)
    }

    /// The word spelled by the path to `node`, if that path is a whole word.
    pub fn word_at(&self, node: usize) -> Option<WordId> {
        self.nodes[node].word
    }
}

/// Interpolated Witten–Bell word bigram with sentence boundaries, in natural-log probabilities.
///
/// `P(w | v) = (c(v,w) + T(v) · P1(w)) / (c(v) + T(v))`, where `T(v)` is the number of distinct
/// words seen after `v` and `P1` is an add-one unigram over the vocabulary plus end-of-sentence.
/// An unseen context falls back to `P1`.
#[derive(Debug, Clone)]
pub struct WordBigram {
    vocabulary: usize,
    unigram_counts: Vec<u32>,
    unigram_total: u32,
    pair_counts: HashMap<(u32, u32), u32>,
    context_counts: Vec<u32>,
    context_types: Vec<u32>,
}

impl WordBigram {
    /// Counts the sentences (word-id sequences) over a vocabulary of `vocabulary` words.
    pub fn train<'a>(vocabulary: usize, sentences: impl IntoIterator<Item = &'a [WordId]>) -> Self {
        // Symbol `vocabulary` is end-of-sentence as a predicted word, and start-of-sentence as a context.
        let boundary = vocabulary as u32;
        let mut model = Self {
            vocabulary,
            unigram_counts: vec![0; vocabulary + 1],
            unigram_total: 0,
            pair_counts: HashMap::new(),
            context_counts: vec![0; vocabulary + 1],
            context_types: vec![0; vocabulary + 1],
        };
        for sentence in sentences {
            let mut previous = boundary;
            for &word in sentence.iter().chain(std::iter::once(&boundary)) {
                model.unigram_counts[word as usize] += 1;
                model.unigram_total += 1;
                let count = model.pair_counts.entry((previous, word)).or_insert(0);
                if *count == 0 {
                    model.context_types[previous as usize] += 1;
                }
                *count += 1;
                model.context_counts[previous as usize] += 1;
                previous = word;
            }
        }
        model
    }

    /// `ln P(word | previous)`; `previous = None` is the sentence start, `word = None` the sentence end.
    pub fn log_prob(&self, previous: Option<WordId>, word: Option<WordId>) -> f32 {
        let boundary = self.vocabulary as u32;
        let v = previous.unwrap_or(boundary);
        let w = word.unwrap_or(boundary);
        let outcomes = (self.vocabulary + 1) as f64;
        let unigram = (f64::from(self.unigram_counts[w as usize]) + 1.0) / (f64::from(self.unigram_total) + outcomes);
        let context = f64::from(self.context_counts[v as usize]);
        let types = f64::from(self.context_types[v as usize]);
        let p = if context == 0.0 {
            unigram
        } else {
            let pair = f64::from(self.pair_counts.get(&(v, w)).copied().unwrap_or(0));
            (pair + types * unigram) / (context + types)
        };
        p.ln() as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trie_finds_words_and_their_prefixes_only() {
        let words: Vec<Vec<usize>> = vec![vec![1, 2], vec![1, 2, 3], vec![4]];
        let lexicon = Lexicon::new(words.iter().map(Vec::as_slice));
        let a = lexicon.child(LEXICON_ROOT, 1).unwrap();
        let ab = lexicon.child(a, 2).unwrap();
        assert_eq!(lexicon.word_at(a), None);
        assert_eq!(lexicon.word_at(ab), Some(0));
        assert_eq!(lexicon.word_at(lexicon.child(ab, 3).unwrap()), Some(1));
        assert_eq!(lexicon.child(LEXICON_ROOT, 2), None);
        assert_eq!(lexicon.len(), 3);
    }

    #[test]
    fn bigram_is_a_distribution_in_every_context() {
        let sentences: Vec<Vec<WordId>> = vec![vec![0, 1, 2], vec![0, 2], vec![1, 1]];
        let lm = WordBigram::train(4, sentences.iter().map(Vec::as_slice));
        for previous in [None, Some(0), Some(1), Some(2), Some(3)] {
            let mut total: f64 = (0..4).map(|w| f64::from(lm.log_prob(previous, Some(w)).exp())).sum();
            total += f64::from(lm.log_prob(previous, None).exp());
            assert!((total - 1.0).abs() < 1e-5, "context {previous:?} sums to {total}");
        }
        // Seen pairs beat unseen ones in the same context.
        assert!(lm.log_prob(Some(0), Some(2)) > lm.log_prob(Some(0), Some(3)));
    }
}
