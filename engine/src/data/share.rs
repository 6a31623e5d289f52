//! Training on a share of a split: every k-th recorded utterance in id order, so that each
//! speaker keeps about the same share (ids start with the speaker) and a run can be repeated.

use super::load::{Utterance, recorded_id};

/// The utterances of `share` (in (0, 1]) of the recorded utterances, evenly spaced in id
/// order, with all of their speed-perturbed copies. Of `n` recorded utterances, the one at rank
/// `i` is kept when `⌊(i + 1)·share⌋ > ⌊i·share⌋`, which keeps `⌊n·share⌋` of them.
pub fn keep_share(utterances: Vec<Utterance>, share: f64) -> Vec<Utterance> {
    if share >= 1.0 {
        return utterances;
    }
    let mut recorded: Vec<&str> = utterances.iter().map(|u| recorded_id(&u.id)).collect();
    recorded.sort_unstable();
    recorded.dedup();
    let kept: std::collections::HashSet<String> = recorded
        .iter()
        .enumerate()
        .filter(|&(i, _)| ((i + 1) as f64 * share).floor() > (i as f64 * share).floor())
        .map(|(_, id)| id.to_string())
        .collect();
    utterances
        .into_iter()
        .filter(|u| kept.contains(recorded_id(&u.id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterance(id: &str) -> Utterance {
        Utterance {
            id: id.to_string(),
            text: "A".into(),
            tokens: vec![1],
            feats: vec![0.0; 80],
            frames: 1,
            duration_seconds: 0.01,
        }
    }

    #[test]
    fn a_quarter_keeps_every_fourth_recording_with_its_speed_copies() {
        let mut all = Vec::new();
        for speaker in [100, 101] {
            for i in 0..8 {
                for id in [format!("{speaker}-1-{i:04}"), format!("{speaker}-1-{i:04}-sp0.9")] {
                    all.push(utterance(&id));
                }
            }
        }
        let kept = keep_share(all.clone(), 0.25);
        let ids: Vec<&str> = kept.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "100-1-0003",
                "100-1-0003-sp0.9",
                "100-1-0007",
                "100-1-0007-sp0.9",
                "101-1-0003",
                "101-1-0003-sp0.9",
                "101-1-0007",
                "101-1-0007-sp0.9"
            ],
            "two of each speaker's eight, each with its copy"
        );
        assert_eq!(keep_share(all.clone(), 1.0).len(), all.len());
        assert_eq!(keep_share(all.clone(), 0.5).len(), all.len() / 2);
        assert_eq!(
            recorded_id("a-sp-b"),
            "a-sp-b",
            "not a speed copy: the part after -sp is no number"
        );
    }
}
