//! Greedy (best-path) CTC decoding: take the most likely class per frame, merge repeats,
//! drop blanks.

use crate::text::BLANK;

/// Decodes one utterance from row-major `[frames, vocab]` scores (log-probabilities or logits:
/// only the per-frame argmax matters). Only the first `frames` rows are read.
pub fn greedy_ctc(scores: &[f32], frames: usize, vocab: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut previous = BLANK;
    for row in scores.chunks_exact(vocab).take(frames) {
        let best = row
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map_or(BLANK, |(i, _)| i);
        if best != BLANK && best != previous {
            out.push(best);
        }
        previous = best;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_hot(ids: &[usize], vocab: usize) -> Vec<f32> {
        ids.iter()
            .flat_map(|&id| (0..vocab).map(move |v| if v == id { 0.0 } else { -5.0 }))
            .collect()
    }

    #[test]
    fn merges_repeats_and_drops_blanks() {
        let scores = one_hot(&[0, 3, 3, 0, 3, 4, 4, 0], 5);
        assert_eq!(greedy_ctc(&scores, 8, 5), vec![3, 3, 4]);
    }

    #[test]
    fn ignores_padding_frames() {
        let scores = one_hot(&[2, 0, 4, 4], 5);
        assert_eq!(greedy_ctc(&scores, 2, 5), vec![2]);
    }
}
