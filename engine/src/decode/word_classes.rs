//! Word classes induced from training text by the exchange algorithm (Kneser & Ney 1993;
//! Martin, Liermann & Ney 1998): words move one at a time to whichever class raises the
//! likelihood of the text under a class bigram, until no move helps.
//!
//! A few hundred sentences leave most word pairs unseen, so a word bigram knows nothing about
//! them; classes learned from the same sentences (in practice, parts of speech) still know
//! that a pronoun is followed by a verb rather than an adjective. Nothing but the training
//! text goes in.

use super::lexicon::WordId;

/// Class of every word, `0..classes`; the sentence boundary has class `classes` of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordClasses {
    class_of: Vec<u16>,
    classes: usize,
}

/// A word's bigram neighbours with counts (the word itself excluded), and its self-pair count.
#[derive(Debug, Clone, Default)]
struct Neighbours {
    /// `(v, n)`: the pair (v, word) seen n times.
    before: Vec<(usize, f64)>,
    /// `(v, n)`: the pair (word, v) seen n times.
    after: Vec<(usize, f64)>,
    itself: f64,
}

/// Class-pair counts and per-class totals: everything the likelihood needs.
struct ClassCounts {
    /// `[(classes + 1)²]`, row = first class of the pair.
    pairs: Vec<f64>,
    /// Times a class is the first / the second member of a pair.
    as_first: Vec<f64>,
    as_second: Vec<f64>,
    width: usize,
}

fn n_log_n(n: f64) -> f64 {
    if n > 0.0 { n * n.ln() } else { 0.0 }
}

impl ClassCounts {
    /// Log-likelihood of the text under the class bigram, up to a term that does not depend on
    /// the classes: `Σ N(a,b) ln N(a,b) − Σ N(a,·) ln N(a,·) − Σ N(·,b) ln N(·,b)`.
    fn log_likelihood(&self) -> f64 {
        self.pairs.iter().map(|&n| n_log_n(n)).sum::<f64>()
            - self.as_first.iter().map(|&n| n_log_n(n)).sum::<f64>()
            - self.as_second.iter().map(|&n| n_log_n(n)).sum::<f64>()
    }

    /// Adds (`sign` = 1) or removes (−1) every pair `word` takes part in, with `word` in `class`.
    fn apply(&mut self, word: &Neighbours, class: usize, class_of: &[usize], sign: f64) {
        for &(v, n) in &word.before {
            self.pairs[class_of[v] * self.width + class] += sign * n;
            self.as_first[class_of[v]] += sign * n;
            self.as_second[class] += sign * n;
        }
        for &(v, n) in &word.after {
            self.pairs[class * self.width + class_of[v]] += sign * n;
            self.as_first[class] += sign * n;
            self.as_second[class_of[v]] += sign * n;
        }
        self.pairs[class * self.width + class] += sign * word.itself;
        self.as_first[class] += sign * word.itself;
        self.as_second[class] += sign * word.itself;
    }
}

impl WordClasses {
    /// Induces `classes` classes for a vocabulary of `vocabulary` words from `sentences`, with at
    /// most `max_passes` passes over the vocabulary. Deterministic: words start in class
    /// `frequency rank mod classes` and are visited in that rank order.
    pub fn induce(vocabulary: usize, sentences: &[Vec<WordId>], classes: usize, max_passes: usize) -> Self {
        let classes = classes.clamp(1, usize::from(u16::MAX));
        let boundary = vocabulary;
        let mut neighbours = vec![Neighbours::default(); vocabulary + 1];
        let mut frequency = vec![0usize; vocabulary];
        let mut pair_counts = std::collections::BTreeMap::<(usize, usize), f64>::new();
        for sentence in sentences {
            let words = sentence.iter().map(|&w| w as usize);
            let mut previous = boundary;
            for word in words.chain(std::iter::once(boundary)) {
                *pair_counts.entry((previous, word)).or_insert(0.0) += 1.0;
                if word != boundary {
                    frequency[word] += 1;
                }
                previous = word;
            }
        }
        for (&(a, b), &n) in &pair_counts {
            if a == b {
                neighbours[a].itself += n;
            } else {
                neighbours[a].after.push((b, n));
                neighbours[b].before.push((a, n));
            }
        }
        let mut by_rank: Vec<usize> = (0..vocabulary).collect();
        by_rank.sort_by(|&a, &b| frequency[b].cmp(&frequency[a]).then(a.cmp(&b)));
        let mut class_of = vec![0usize; vocabulary + 1];
        for (rank, &word) in by_rank.iter().enumerate() {
            class_of[word] = rank % classes;
        }
        class_of[boundary] = classes;

        let width = classes + 1;
        let mut counts = ClassCounts {
            pairs: vec![0.0; width * width],
            as_first: vec![0.0; width],
            as_second: vec![0.0; width],
            width,
        };
        for (&(a, b), &n) in &pair_counts {
            counts.pairs[class_of[a] * width + class_of[b]] += n;
            counts.as_first[class_of[a]] += n;
            counts.as_second[class_of[b]] += n;
        }
        for _ in 0..max_passes {
            let mut moved = false;
            for &word in &by_rank {
                let home = class_of[word];
                counts.apply(&neighbours[word], home, &class_of, -1.0);
                let mut score_in = |class: usize| {
                    counts.apply(&neighbours[word], class, &class_of, 1.0);
                    let score = counts.log_likelihood();
                    counts.apply(&neighbours[word], class, &class_of, -1.0);
                    score
                };
                let mut best = (score_in(home), home);
                for candidate in (0..classes).filter(|&c| c != home) {
                    let score = score_in(candidate);
                    // Strictly better only, so ties keep the word where it is and passes end.
                    if score > best.0 + 1e-9 {
                        best = (score, candidate);
                    }
                }
                counts.apply(&neighbours[word], best.1, &class_of, 1.0);
                if best.1 != home {
                    class_of[word] = best.1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        Self {
            class_of: class_of[..vocabulary].iter().map(|&c| c as u16).collect(),
            classes,
        }
    }

    /// Number of word classes (the boundary's class, `classes()`, not counted).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The class of `word`; `None` (the sentence boundary) has class `classes()`.
    pub fn class_of(&self, word: Option<WordId>) -> usize {
        word.map_or(self.classes, |w| usize::from(self.class_of[w as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_used_alike_end_in_one_class() {
        // Two "determiners" (0, 1) always precede one of two "nouns" (2, 3), which precede one of
        // two "verbs" (4, 5). With three classes the exchange algorithm should find exactly that.
        let mut sentences = Vec::new();
        for (i, det) in [0u32, 1].into_iter().enumerate() {
            for (j, noun) in [2u32, 3].into_iter().enumerate() {
                for verb in [4u32, 5] {
                    for _ in 0..=(i + j) {
                        sentences.push(vec![det, noun, verb]);
                    }
                }
            }
        }
        let classes = WordClasses::induce(6, &sentences, 3, 20);
        let class = |w: u32| classes.class_of(Some(w));
        assert_eq!(class(0), class(1), "{classes:?}");
        assert_eq!(class(2), class(3), "{classes:?}");
        assert_eq!(class(4), class(5), "{classes:?}");
        assert_ne!(class(0), class(2));
        assert_ne!(class(2), class(4));
        assert_eq!(classes.class_of(None), 3);
    }
}
