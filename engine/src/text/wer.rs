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
    let (r, h) = word_ids(reference, hypothesis);
    count(&edit_path(&r, &h), r.len())
}

/// Character-level score; spaces between words count as characters, as in the usual CER.
pub fn score_chars(reference: &str, hypothesis: &str) -> EditCounts {
    let squash = |s: &str| -> Vec<u32> {
        let words: Vec<&str> = s.split_whitespace().collect();
        words.join(" ").chars().map(u32::from).collect()
    };
    let (r, h) = (squash(reference), squash(hypothesis));
    count(&edit_path(&r, &h), r.len())
}

/// Word alignment, for highlighting errors in a transcript.
pub fn align_words(reference: &str, hypothesis: &str) -> Alignment {
    let (r_words, h_words): (Vec<&str>, Vec<&str>) = (
        reference.split_whitespace().collect(),
        hypothesis.split_whitespace().collect(),
    );
    let (r, h) = word_ids(reference, hypothesis);
    let path = edit_path(&r, &h);
    let (mut i, mut j) = (0, 0);
    let tokens = path
        .iter()
        .map(|&kind| {
            let reference = (kind != ErrorKind::Insertion).then(|| r_words[i].to_string());
            let hypothesis = (kind != ErrorKind::Deletion).then(|| h_words[j].to_string());
            i += usize::from(reference.is_some());
            j += usize::from(hypothesis.is_some());
            AlignedToken {
                kind,
                reference,
                hypothesis,
            }
        })
        .collect();
    Alignment {
        tokens,
        counts: count(&path, r.len()),
    }
}

/// Both transcripts' words as ids (equal words, equal ids): the alignment compares integers
/// and holds no string per token.
fn word_ids(reference: &str, hypothesis: &str) -> (Vec<u32>, Vec<u32>) {
    let mut ids = std::collections::HashMap::new();
    let mut id_of = |word: &str| -> u32 {
        let next = ids.len() as u32;
        *ids.entry(word.to_string()).or_insert(next)
    };
    let r = reference.split_whitespace().map(&mut id_of).collect();
    let h = hypothesis.split_whitespace().map(&mut id_of).collect();
    (r, h)
}

fn count(path: &[ErrorKind], reference_len: usize) -> EditCounts {
    let mut counts = EditCounts {
        reference_len,
        ..EditCounts::default()
    };
    for kind in path {
        match kind {
            ErrorKind::Correct => counts.hits += 1,
            ErrorKind::Substitution => counts.substitutions += 1,
            ErrorKind::Deletion => counts.deletions += 1,
            ErrorKind::Insertion => counts.insertions += 1,
        }
    }
    counts
}

/// Alignments up to this many table cells (64 MiB of costs) keep the whole table and take
/// the traceback's tie-breaking; longer ones use Hirschberg's divide and conquer, which
/// needs memory linear in the line length (a 50,000-word line would need a table of 10 GB).
const FULL_TABLE_CELLS: usize = 1 << 24;

/// A minimum-edit alignment with unit costs, as the kinds of its steps in order.
fn edit_path(reference: &[u32], hypothesis: &[u32]) -> Vec<ErrorKind> {
    let mut path = Vec::with_capacity(reference.len().max(hypothesis.len()));
    if (reference.len() + 1).saturating_mul(hypothesis.len() + 1) <= FULL_TABLE_CELLS {
        full_table_path(reference, hypothesis, &mut path);
        return path;
    }
    // Equal ends always align as matches in some optimal alignment; taking them off first
    // makes long, mostly right transcripts cheap.
    let prefix = reference.iter().zip(hypothesis).take_while(|(r, h)| r == h).count();
    let (reference, hypothesis) = (&reference[prefix..], &hypothesis[prefix..]);
    let suffix = reference
        .iter()
        .rev()
        .zip(hypothesis.iter().rev())
        .take_while(|(r, h)| r == h)
        .count();
    path.resize(prefix, ErrorKind::Correct);
    hirschberg_path(
        &reference[..reference.len() - suffix],
        &hypothesis[..hypothesis.len() - suffix],
        &mut path,
    );
    path.resize(path.len() + suffix, ErrorKind::Correct);
    path
}

/// Appends an optimal alignment of `reference` and `hypothesis`, splitting the reference in
/// half and the hypothesis where an optimal path crosses the middle row, found from one
/// forward and one backward row of costs. Time is twice the full table's; memory is linear.
fn hirschberg_path(reference: &[u32], hypothesis: &[u32], path: &mut Vec<ErrorKind>) {
    if (reference.len() + 1).saturating_mul(hypothesis.len() + 1) <= FULL_TABLE_CELLS / 16 || reference.len() < 2 {
        full_table_path(reference, hypothesis, path);
        return;
    }
    let middle = reference.len() / 2;
    let forward = last_cost_row(reference[..middle].iter(), hypothesis.iter());
    let mut backward = last_cost_row(reference[middle..].iter().rev(), hypothesis.iter().rev());
    backward.reverse();
    let split = (0..=hypothesis.len())
        .min_by_key(|&j| forward[j] + backward[j])
        .expect("a row has at least one cell");
    hirschberg_path(&reference[..middle], &hypothesis[..split], path);
    hirschberg_path(&reference[middle..], &hypothesis[split..], path);
}

/// The edit costs of the whole `reference` against every prefix of `hypothesis`.
fn last_cost_row<'a>(
    reference: impl Iterator<Item = &'a u32>,
    hypothesis: impl Iterator<Item = &'a u32> + Clone,
) -> Vec<u32> {
    let mut row: Vec<u32> = (0..).take(hypothesis.clone().count() + 1).collect();
    for (i, r) in reference.enumerate() {
        let mut diagonal = row[0];
        row[0] = i as u32 + 1;
        for (j, h) in hypothesis.clone().enumerate() {
            let substitution = diagonal + u32::from(r != h);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j + 1] + 1).min(row[j] + 1);
        }
    }
    row
}

/// Minimum-edit alignment from the whole cost table. Ties on the way back prefer a match or
/// substitution, then a deletion, then an insertion, which keeps alignments stable.
fn full_table_path(reference: &[u32], hypothesis: &[u32], path: &mut Vec<ErrorKind>) {
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
    let start = path.len();
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let same = reference[i - 1] == hypothesis[j - 1];
            if here == cost[(i - 1) * width + j - 1] + u32::from(!same) {
                path.push(if same {
                    ErrorKind::Correct
                } else {
                    ErrorKind::Substitution
                });
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if i > 0 && here == cost[(i - 1) * width + j] + 1 {
            path.push(ErrorKind::Deletion);
            i -= 1;
        } else {
            path.push(ErrorKind::Insertion);
            j -= 1;
        }
    }
    path[start..].reverse();
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

    /// Replays a path over the two sequences: it must consume both exactly, and call a pair
    /// correct exactly when the tokens are equal. Returns its number of errors.
    fn errors_of_valid_path(path: &[ErrorKind], r: &[u32], h: &[u32]) -> usize {
        let (mut i, mut j, mut errors) = (0, 0, 0);
        for kind in path {
            match kind {
                ErrorKind::Correct | ErrorKind::Substitution => {
                    assert_eq!(r[i] == h[j], *kind == ErrorKind::Correct, "at {i}, {j}");
                    (i, j) = (i + 1, j + 1);
                }
                ErrorKind::Deletion => i += 1,
                ErrorKind::Insertion => j += 1,
            }
            errors += usize::from(*kind != ErrorKind::Correct);
        }
        assert_eq!((i, j), (r.len(), h.len()));
        errors
    }

    /// Hirschberg's split must find an alignment as good as the full table's. Sequences of
    /// 1,500 and 1,400 tokens (2.1 M cells) are split twice before the table takes over.
    #[test]
    fn the_linear_memory_alignment_is_as_short_as_the_full_tables() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut tokens = |n: usize, alphabet: u64| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) % alphabet) as u32
                })
                .collect()
        };
        for alphabet in [2, 5, 40] {
            let (r, h) = (tokens(1500, alphabet), tokens(1400, alphabet));
            let (mut split, mut table) = (Vec::new(), Vec::new());
            hirschberg_path(&r, &h, &mut split);
            full_table_path(&r, &h, &mut table);
            assert_eq!(
                errors_of_valid_path(&split, &r, &h),
                errors_of_valid_path(&table, &r, &h),
                "alphabet of {alphabet}"
            );
        }
    }

    /// Above the full table's size `edit_path` trims equal ends and splits the rest; on lines
    /// of 5,000 tokens sharing a start and an end it must cost what the full table costs.
    #[test]
    fn long_lines_with_equal_ends_align_as_well_as_the_full_table() {
        let mut state = 0x51ed_270b_2ad7_e0a5u64;
        let mut tokens = |n: usize| -> Vec<u32> {
            (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    ((state >> 33) % 7) as u32
                })
                .collect()
        };
        let (start, end) = (tokens(1000), tokens(900));
        let r = [start.clone(), tokens(3100), end.clone()].concat();
        let h = [start, tokens(3000), end].concat();
        assert!(
            (r.len() + 1) * (h.len() + 1) > FULL_TABLE_CELLS,
            "the test must take the long path"
        );
        let long = edit_path(&r, &h);
        let mut table = Vec::new();
        full_table_path(&r, &h, &mut table);
        assert_eq!(
            errors_of_valid_path(&long, &r, &h),
            errors_of_valid_path(&table, &r, &h)
        );
    }

    #[test]
    fn totals_add_counts_not_rates() {
        let mut total = score_words("A B C D", "A B C D");
        total.add(&score_words("E", "F"));
        assert_eq!(total.rate_percent(), 20.0);
    }
}
