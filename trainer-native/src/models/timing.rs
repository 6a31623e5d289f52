//! Timing forward passes of a dense and a pruned model over the same utterances, for
//! real-time factors and speed-ups that survive a shared, drifting machine.

use std::time::Instant;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::Module;
use prunelab_engine::data::{ShapeBuckets, Utterance, make_batches};
use prunelab_engine::model::Conformer;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::prepare_batch;

use crate::reports::statistics::median;

/// Times forward passes over the dev set: each pass reads the logits back, so the device has
/// finished the work it is timed for.
pub struct DevTimer<'a> {
    dev: &'a [Utterance],
    stats: &'a FeatureStats,
    batches: Vec<Vec<usize>>,
    audio_seconds: f64,
}

impl<'a> DevTimer<'a> {
    pub fn new(dev: &'a [Utterance], stats: &'a FeatureStats, max_batch_frames: usize) -> Self {
        let plan = make_batches(dev, max_batch_frames, ShapeBuckets::default(), &mut SplitMix64::new(0));
        Self {
            dev,
            stats,
            batches: plan.batches,
            audio_seconds: dev.iter().map(|u| u.duration_seconds).sum(),
        }
    }

    /// Seconds for one forward pass of `model` over the dev set. A failed read-back would make
    /// the time meaningless, so it ends the sweep.
    fn pass(&self, model: &Conformer) -> Result<f64, String> {
        let device = model.devices().first().cloned().unwrap_or_default();
        let started = Instant::now();
        for indices in &self.batches {
            let batch: Vec<&Utterance> = indices.iter().map(|&i| &self.dev[i]).collect();
            let prepared = prepare_batch(&batch, self.stats, None, ShapeBuckets::default(), &device);
            let out = model.forward(prepared.feats, &prepared.batch.frame_lengths);
            // Sync point: the logits are read, so the device has finished the work being timed.
            out.logits
                .try_into_vec_as::<f32>()
                .map_err(|e| format!("timing a pass over dev: cannot read the logits back: {e:?}"))?;
        }
        Ok(started.elapsed().as_secs_f64())
    }

    /// Median real-time factor of `model` over `repeats` passes after a warm-up pass (which
    /// fills caches and allocators).
    pub fn real_time_factor(&self, model: &Conformer, repeats: usize) -> Result<f64, String> {
        self.pass(model)?;
        let times = (0..repeats.max(1))
            .map(|_| self.pass(model))
            .collect::<Result<_, _>>()?;
        Ok(median(times) / self.audio_seconds)
    }

    /// `(real-time factor of pruned, speed-up over dense)`, from `repeats` back-to-back pairs of
    /// passes in alternating order. The speed-up is the median of the per-pair ratios, so a
    /// machine that slows down or speeds up during the sweep (shared cores) moves both sides
    /// of each ratio alike.
    pub fn paired(&self, dense: &Conformer, pruned: &Conformer, repeats: usize) -> Result<(f64, f64), String> {
        self.pass(dense)?;
        self.pass(pruned)?;
        let (mut pruned_times, mut ratios) = (Vec::new(), Vec::new());
        for r in 0..repeats.max(1) {
            let (d, p) = if r % 2 == 0 {
                let d = self.pass(dense)?;
                (d, self.pass(pruned)?)
            } else {
                let p = self.pass(pruned)?;
                (self.pass(dense)?, p)
            };
            pruned_times.push(p);
            ratios.push(d / p);
        }
        Ok((median(pruned_times) / self.audio_seconds, median(ratios)))
    }
}
