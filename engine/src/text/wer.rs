//! Word and character error rates by Levenshtein alignment, sclite-style: every error is a
//! substitution, deletion (reference token missing) or insertion (extra hypothesis token).

use serde::{Deserialize, Serialize};

/// Substitution, deletion and insertion counts against a number of reference tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EditCounts {
    pub substitutions: usize,
    pub deletions: usize,
    pub insertions: usize,
    /// Tokens in the reference (the denominator of the error rate).
    pub reference_len: usize,
    /// Correctly recognised reference tokens.
    pub hits: usize,
}

impl EditCounts {
    pub fn errors(&self) -> usize {
        self.substitutions + self.deletions + self.insertions
    }

    /// Error rate in percent. An empty reference scores 0% with no errors and 100% otherwise,
    /// so a hallucinated transcript of silence is never free.
    pub fn rate_percent(&self) -> f64 {
        match (self.reference_len, self.errors()) {
            (0, 0) => 0.0,
            (0, _) => 100.0,
            (n, e) => 100.0 * e as f64 / n as f64,
        }
    }

    /// Adds another utterance's counts (corpus totals are sums, not averages of rates).
    pub fn add(&mut self, other: &EditCounts) {
        self.substitutions += other.substitutions;
        self.deletions += other.deletions;
        self.insertions += other.insertions;
        self.reference_len += other.reference_len;
        self.hits += other.hits;
    }
}

/// What happened to one aligned position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    Correct,
    Substitution,
    Deletion,
    Insertion,
}

/// One aligned pair: `reference` is `None` for an insertion, `hypothesis` is `None` for a deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlignedToken {
    pub kind: ErrorKind,
    pub reference: Option<String>,
    pub hypothesis: Option<String>,
}

/// A full alignment and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alignment {
    pub tokens: Vec<AlignedToken>,
    pub counts: EditCounts,
}

/// Word-level score of a hypothesis against a reference (both split on whitespace).
pub fn score_words(reference: &str, hypothesis: &str) -> EditCounts {
    align_words(reference, hypothesis).counts
}

/// Character-level score; spaces between words count as characters, as in the usual CER.
pub fn score_chars(reference: &str, hypothesis: &str) -> EditCounts {
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let r: Vec<String> = squash(reference).chars().map(String::from).collect();
    let h: Vec<String> = squash(hypothesis).chars().map(String::from).collect();
    align(&r, &h).counts
}

/// Word alignment, for highlighting errors in a transcript.
pub fn align_words(reference: &str, hypothesis: &str) -> Alignment {
    let r: Vec<String> = reference.split_whitespace().map(String::from).collect();
    let h: Vec<String> = hypothesis.split_whitespace().map(String::from).collect();
    align(&r, &h)
}

/// Minimum-edit alignment with unit costs. Ties on the way back prefer a match or
/// substitution, then a deletion, then an insertion, which keeps alignments stable.
fn align(reference: &[String], hypothesis: &[String]) -> Alignment {
    let (n, m) = (reference.len(), hypothesis.len());
    // cost[i][j]: edits to turn reference[..i] into hypothesis[..j]; (n+1)(m+1) cells.
    let width = m + 1;
    let mut cost = vec![0u32; (n + 1) * width];
    for i in 0..=n {
        cost[i * width] = i as u32;
    }
    for j in 0..=m {
        cost[j] = j as u32;
    }
    for i in 1..=n {
        for j in 1..=m {
            let diagonal = cost[(i - 1) * width + j - 1] + u32::from(reference[i - 1] != hypothesis[j - 1]);
            let deletion = cost[(i - 1) * width + j] + 1;
            let insertion = cost[i * width + j - 1] + 1;
            cost[i * width + j] = diagonal.min(deletion).min(insertion);
        }
    }

    let mut tokens = Vec::with_capacity(n.max(m));
    let mut counts = EditCounts {
        reference_len: n,
        ..EditCounts::default()
    };
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let same = reference[i - 1] == hypothesis[j - 1];
            if here == cost[(i - 1) * width + j - 1] + u32::from(!same) {
                let kind = if same {
                    ErrorKind::Correct
                } else {
                    ErrorKind::Substitution
                };
                if same {
                    counts.hits += 1;
                } else {
                    counts.substitutions += 1;
                }
                tokens.push(AlignedToken {
                    kind,
                    reference: Some(reference[i - 1].clone()),
                    hypothesis: Some(hypothesis[j - 1].clone()),
                });
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if i > 0 && here == cost[(i - 1) * width + j] + 1 {
            counts.deletions += 1;
            tokens.push(AlignedToken {
                kind: ErrorKind::Deletion,
                reference: Some(reference[i - 1].clone()),
                hypothesis: None,
            });
            i -= 1;
        } else {
            counts.insertions += 1;
            tokens.push(AlignedToken {
                kind: ErrorKind::Insertion,
                reference: None,
                hypothesis: Some(hypothesis[j - 1].clone()),
            });
            j -= 1;
        }
    }
    tokens.reverse();
    Alignment { tokens, counts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_transcripts_score_zero() {
        let c = score_words("A B C", "A  B C");
        assert_eq!((c.errors(), c.hits, c.reference_len), (0, 3, 3));
        assert_eq!(c.rate_percent(), 0.0);
    }

    #[test]
    fn counts_each_error_kind() {
        // ref: THE CAT SAT ON MAT ; hyp: THE BAT SAT MAT MAT TOO
        // THE=, CAT→BAT (S), SAT=, ON→MAT (S), MAT=, +TOO (I)  → 2 S, 0 D, 1 I, or an equal-cost variant.
        let c = score_words("THE CAT SAT ON MAT", "THE BAT SAT MAT MAT TOO");
        assert_eq!(c.errors(), 3);
        assert_eq!(c.substitutions + c.deletions + c.insertions, 3);
        assert_eq!(c.reference_len, 5);
        assert_eq!(c.hits + c.substitutions + c.deletions, c.reference_len);
    }

    #[test]
    fn pure_deletions_and_insertions() {
        let d = score_words("ONE TWO THREE", "TWO");
        assert_eq!((d.deletions, d.substitutions, d.insertions), (2, 0, 0));
        let i = score_words("TWO", "ONE TWO THREE");
        assert_eq!((i.deletions, i.substitutions, i.insertions), (0, 0, 2));
        assert_eq!(i.rate_percent(), 200.0);
    }

    #[test]
    fn empty_reference_is_never_free() {
        assert_eq!(score_words("", "").rate_percent(), 0.0);
        assert_eq!(score_words("", "HELLO").rate_percent(), 100.0);
        assert_eq!(score_words("HELLO", "").deletions, 1);
    }

    #[test]
    fn alignment_lists_tokens_in_order() {
        let a = align_words("A B C", "A X C D");
        let kinds: Vec<_> = a.tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ErrorKind::Correct,
                ErrorKind::Substitution,
                ErrorKind::Correct,
                ErrorKind::Insertion
            ]
        );
    }

    #[test]
    fn character_error_rate_counts_spaces() {
        let c = score_chars("AB CD", "ABCD");
        assert_eq!((c.deletions, c.reference_len), (1, 5));
    }

    #[test]
    fn totals_add_counts_not_rates() {
        let mut total = score_words("A B C D", "A B C D");
        total.add(&score_words("E", "F"));
        assert_eq!(total.rate_percent(), 20.0);
    }
}
