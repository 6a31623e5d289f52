//! Batching by total audio duration: utterances of similar length share a batch (little
//! padding), batches hold at most a frame budget, and the batch order is shuffled per epoch.

use super::Utterance;
use crate::rng::SplitMix64;

/// Which utterances (indices into the split) form each batch, in training order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlan {
    pub batches: Vec<Vec<usize>>,
}

/// Groups utterances so each batch has at most `max_frames` padded frames
/// (`batch size × longest utterance`), then shuffles the batch order with `rng`.
/// An utterance longer than `max_frames` gets a batch of its own.
pub fn make_batches(utterances: &[Utterance], max_frames: usize, rng: &mut SplitMix64) -> BatchPlan {
    let mut order: Vec<usize> = (0..utterances.len()).collect();
    // Shuffle before the stable sort so equal lengths are grouped differently each epoch.
    rng.shuffle(&mut order);
    order.sort_by_key(|&i| utterances[i].frames);
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        let longest = utterances[i].frames; // sorted ascending: the newcomer is the longest
        if !current.is_empty() && longest * (current.len() + 1) > max_frames {
            batches.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        batches.push(current);
    }
    rng.shuffle(&mut batches);
    BatchPlan { batches }
}

/// A padded batch in plain memory, ready to become tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// `[batch, max_frames, num_bins]`, zero-padded, row-major.
    pub feats: Vec<f32>,
    pub frame_lengths: Vec<usize>,
    /// `[batch, max_target_len]`, padded with the blank id.
    pub targets: Vec<i64>,
    pub target_lengths: Vec<usize>,
    pub num_bins: usize,
    pub ids: Vec<String>,
}

impl Batch {
    /// Pads the chosen utterances. `transform` runs on each utterance's features (a copy)
    /// before padding: normalisation, SpecAugment.
    pub fn from_utterances(utterances: &[&Utterance], num_bins: usize, mut transform: impl FnMut(&mut [f32])) -> Self {
        let max_frames = utterances.iter().map(|u| u.frames).max().unwrap_or(0);
        let max_target = utterances.iter().map(|u| u.tokens.len()).max().unwrap_or(0);
        let mut feats = vec![0.0f32; utterances.len() * max_frames * num_bins];
        let mut targets = vec![0i64; utterances.len() * max_target];
        for (b, u) in utterances.iter().enumerate() {
            let mut copy = u.feats.clone();
            transform(&mut copy);
            let start = b * max_frames * num_bins;
            feats[start..start + copy.len()].copy_from_slice(&copy);
            for (t, &token) in u.tokens.iter().enumerate() {
                targets[b * max_target + t] = token as i64;
            }
        }
        Self {
            feats,
            frame_lengths: utterances.iter().map(|u| u.frames).collect(),
            targets,
            target_lengths: utterances.iter().map(|u| u.tokens.len()).collect(),
            num_bins,
            ids: utterances.iter().map(|u| u.id.clone()).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.frame_lengths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frame_lengths.is_empty()
    }

    pub fn max_frames(&self) -> usize {
        self.frame_lengths.iter().copied().max().unwrap_or(0)
    }

    pub fn max_target_len(&self) -> usize {
        self.target_lengths.iter().copied().max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utt(frames: usize) -> Utterance {
        Utterance {
            id: format!("u{frames}"),
            text: "A".into(),
            tokens: vec![3],
            feats: vec![1.0; frames * 2],
            frames,
            duration_seconds: 0.0,
        }
    }

    #[test]
    fn batches_cover_every_utterance_once_within_budget() {
        let utts: Vec<Utterance> = [50, 10, 30, 200, 20, 40, 60, 25].into_iter().map(utt).collect();
        let plan = make_batches(&utts, 100, &mut SplitMix64::new(0));
        let mut seen: Vec<usize> = plan.batches.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..utts.len()).collect::<Vec<_>>());
        for batch in &plan.batches {
            let longest = batch.iter().map(|&i| utts[i].frames).max().unwrap();
            assert!(batch.len() == 1 || longest * batch.len() <= 100, "{batch:?}");
        }
    }

    #[test]
    fn padding_keeps_each_utterance_intact() {
        let (a, b) = (utt(3), utt(5));
        let batch = Batch::from_utterances(&[&a, &b], 2, |_| {});
        assert_eq!(batch.max_frames(), 5);
        assert_eq!(&batch.feats[..6], &[1.0; 6]);
        assert_eq!(&batch.feats[6..10], &[0.0; 4]);
        assert_eq!(&batch.feats[10..20], &[1.0; 10]);
    }
}
