//! Batching by total audio duration: utterances of similar length share a batch (little
//! padding), batches hold at most a frame budget, and the batch order is shuffled per epoch.

use serde::{Deserialize, Serialize};

use super::Utterance;
use crate::rng::SplitMix64;

/// Multiples that padded batch sizes are rounded up to. A backend that compiles or tunes
/// kernels per tensor shape (wgpu, WebGPU above all) then meets a handful of shapes instead of
/// a new one at almost every step. `1` pads exactly to the longest item (the default); the
/// padding is masked, so results do not depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShapeBuckets {
    /// Frames per batch are a multiple of this.
    pub frames: usize,
    /// Target tokens per batch are a multiple of this.
    pub tokens: usize,
}

impl Default for ShapeBuckets {
    fn default() -> Self {
        Self { frames: 1, tokens: 1 }
    }
}

impl ShapeBuckets {
    /// `frames` rounded up to the bucket.
    pub fn frames_for(&self, frames: usize) -> usize {
        frames.div_ceil(self.frames.max(1)) * self.frames.max(1)
    }

    /// `tokens` rounded up to the bucket.
    pub fn tokens_for(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.tokens.max(1)) * self.tokens.max(1)
    }
}

/// Which utterances (indices into the split) form each batch, in training order.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchPlan {
    pub batches: Vec<Vec<usize>>,
}

/// Groups utterances so each batch has at most `max_frames` padded frames
/// (`batch size × longest utterance`), then shuffles the batch order with `rng`.
/// An utterance longer than `max_frames` gets a batch of its own.
pub fn make_batches(
    utterances: &[Utterance],
    max_frames: usize,
    buckets: ShapeBuckets,
    rng: &mut SplitMix64,
) -> BatchPlan {
    let lengths: Vec<usize> = utterances.iter().map(|u| u.frames).collect();
    make_batches_by_length(&lengths, max_frames, buckets, rng)
}

/// [`make_batches`] from lengths in frames alone, for corpora whose features are computed only
/// when their batch comes up (the streamed LibriSpeech path knows durations from file headers).
pub fn make_batches_by_length(
    lengths: &[usize],
    max_frames: usize,
    buckets: ShapeBuckets,
    rng: &mut SplitMix64,
) -> BatchPlan {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    // Shuffle before the stable sort so equal lengths are grouped differently each epoch.
    rng.shuffle(&mut order);
    order.sort_by_key(|&i| lengths[i]);
    let mut batches = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted ascending: the newcomer is the longest; a batch is as long as its bucket.
        let longest = buckets.frames_for(lengths[i]);
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
    /// `[batch, frames, num_bins]`, zero-padded, row-major.
    pub feats: Vec<f32>,
    /// Padded length in frames (at least the longest item's).
    pub frames: usize,
    /// Padded target length (at least the longest transcript's).
    pub tokens: usize,
    pub frame_lengths: Vec<usize>,
    /// `[batch, tokens]`, padded with the blank id.
    pub targets: Vec<i64>,
    pub target_lengths: Vec<usize>,
    pub num_bins: usize,
    pub ids: Vec<String>,
}

impl Batch {
    /// Pads the chosen utterances. `transform` runs on each utterance's features (a copy)
    /// before padding: normalisation, SpecAugment.
    pub fn from_utterances(
        utterances: &[&Utterance],
        num_bins: usize,
        buckets: ShapeBuckets,
        mut transform: impl FnMut(&mut [f32]),
    ) -> Self {
        let max_frames = buckets.frames_for(utterances.iter().map(|u| u.frames).max().unwrap_or(0));
        let max_target = buckets.tokens_for(utterances.iter().map(|u| u.tokens.len()).max().unwrap_or(0));
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
            frames: max_frames,
            tokens: max_target,
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
        let plan = make_batches(&utts, 100, ShapeBuckets::default(), &mut SplitMix64::new(0));
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
        let batch = Batch::from_utterances(&[&a, &b], 2, ShapeBuckets::default(), |_| {});
        assert_eq!(batch.max_frames(), 5);
        assert_eq!(&batch.feats[..6], &[1.0; 6]);
        assert_eq!(&batch.feats[6..10], &[0.0; 4]);
        assert_eq!(&batch.feats[10..20], &[1.0; 10]);
    }

    #[test]
    fn buckets_round_padded_shapes_up_and_size_batches_by_them() {
        let utts: Vec<Utterance> = [50, 10, 30, 200, 20, 40, 60, 25].into_iter().map(utt).collect();
        let buckets = ShapeBuckets { frames: 40, tokens: 4 };
        let plan = make_batches(&utts, 120, buckets, &mut SplitMix64::new(0));
        for batch in &plan.batches {
            let items: Vec<&Utterance> = batch.iter().map(|&i| &utts[i]).collect();
            let padded = Batch::from_utterances(&items, 2, buckets, |_| {});
            assert_eq!(padded.frames % 40, 0);
            assert!(padded.frames >= padded.max_frames() && padded.frames < padded.max_frames() + 40);
            assert_eq!(padded.tokens, 4);
            assert_eq!(padded.feats.len(), items.len() * padded.frames * 2);
            assert!(items.len() == 1 || padded.frames * items.len() <= 120, "{batch:?}");
        }
        // Lengths stay the true ones: the padding is masked, not learned from.
        let padded = Batch::from_utterances(&[&utts[0]], 2, buckets, |_| {});
        assert_eq!((padded.frame_lengths[0], padded.frames), (50, 80));
    }
}
