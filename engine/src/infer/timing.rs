//! Timing forward passes of a dense and a pruned model over the same utterances: real-time
//! factors and speed-ups that survive a shared, drifting machine. Both front doors time with
//! it (`prunelab sweep` and `compare`; the lab beside every cut). The engine has no clock of its
//! own (`std::time::Instant` does not exist in the browser), so the caller passes one.

use super::batch::prepare_batch;
use crate::audio::FeatureStats;
use crate::data::{ShapeBuckets, Utterance, make_batches};
use crate::model::Conformer;
use crate::readback::{ReadBackError, read_floats};
use crate::rng::SplitMix64;
use crate::stats::median;

/// Seconds since some fixed moment: `Instant` natively, `performance.now()` in the browser.
pub trait Clock {
    fn seconds(&self) -> f64;
}

/// Dense and pruned timed in alternating pairs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTiming {
    /// Median seconds of one pass over the utterances.
    pub dense_seconds: f64,
    pub pruned_seconds: f64,
    /// Median of the per-pair ratios dense / pruned.
    pub speedup: f64,
    /// Utterances in one pass, and their seconds of audio.
    pub utterances: usize,
    pub audio_seconds: f64,
    /// Dense/pruned pairs the medians are over.
    pub pairs: usize,
}

impl PairedTiming {
    /// The pruned model's real-time factor (seconds of compute per second of audio).
    pub fn pruned_real_time_factor(&self) -> f64 {
        self.pruned_seconds / self.audio_seconds
    }
}

/// Times forward passes over a fixed set of utterances: each pass reads the logits back, so
/// the device has finished the work it is timed for.
pub struct DevTimer<'a> {
    utterances: &'a [Utterance],
    stats: &'a FeatureStats,
    batches: Vec<Vec<usize>>,
    audio_seconds: f64,
}

impl<'a> DevTimer<'a> {
    pub fn new(utterances: &'a [Utterance], stats: &'a FeatureStats, max_batch_frames: usize) -> Self {
        let plan = make_batches(
            utterances,
            max_batch_frames,
            ShapeBuckets::default(),
            &mut SplitMix64::new(0),
        );
        Self {
            utterances,
            stats,
            batches: plan.batches,
            audio_seconds: utterances.iter().map(|u| u.duration_seconds).sum(),
        }
    }

    /// Seconds of audio in one pass.
    pub fn audio_seconds(&self) -> f64 {
        self.audio_seconds
    }

    /// Seconds for one forward pass of `model` over the utterances.
    async fn pass(&self, model: &Conformer, clock: &dyn Clock) -> Result<f64, ReadBackError> {
        let device = model.device();
        let started = clock.seconds();
        for indices in &self.batches {
            let batch: Vec<&Utterance> = indices.iter().map(|&i| &self.utterances[i]).collect();
            let prepared = prepare_batch(&batch, self.stats, None, ShapeBuckets::default(), &device);
            let out = model.forward(prepared.feats, &prepared.batch.frame_lengths);
            // Sync point: the logits are read, so the device has finished the work being timed.
            read_floats(out.logits, "the logits of a timed pass").await?;
        }
        Ok(clock.seconds() - started)
    }

    /// Median real-time factor of `model` over `repeats` passes after a warm-up pass (which
    /// fills caches and allocators, and on WebGPU compiles the kernels).
    pub async fn real_time_factor(
        &self,
        model: &Conformer,
        repeats: usize,
        clock: &dyn Clock,
    ) -> Result<f64, ReadBackError> {
        self.pass(model, clock).await?;
        let mut times = Vec::with_capacity(repeats.max(1));
        for _ in 0..repeats.max(1) {
            times.push(self.pass(model, clock).await?);
        }
        Ok(median(&times).unwrap_or(f64::NAN) / self.audio_seconds)
    }

    /// `dense` against `pruned` in `repeats` back-to-back pairs of passes in alternating
    /// order, after a warm-up pass of each. The speed-up is the median of the per-pair ratios,
    /// so a machine that slows down or speeds up during the timing (shared cores) moves both
    /// sides of each ratio alike.
    pub async fn paired(
        &self,
        dense: &Conformer,
        pruned: &Conformer,
        repeats: usize,
        clock: &dyn Clock,
    ) -> Result<PairedTiming, ReadBackError> {
        self.pass(dense, clock).await?;
        self.pass(pruned, clock).await?;
        let (mut dense_times, mut pruned_times, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..repeats.max(1) {
            let (d, p) = if r % 2 == 0 {
                let d = self.pass(dense, clock).await?;
                (d, self.pass(pruned, clock).await?)
            } else {
                let p = self.pass(pruned, clock).await?;
                (self.pass(dense, clock).await?, p)
            };
            dense_times.push(d);
            pruned_times.push(p);
            ratios.push(d / p);
        }
        let middle = |values: &[f64]| median(values).unwrap_or(f64::NAN);
        Ok(PairedTiming {
            dense_seconds: middle(&dense_times),
            pruned_seconds: middle(&pruned_times),
            speedup: middle(&ratios),
            utterances: self.utterances.len(),
            audio_seconds: self.audio_seconds,
            pairs: ratios.len(),
        })
    }
}
