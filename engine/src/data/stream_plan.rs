//! Which utterances make up the batch of each training step when a corpus is streamed from
//! disk: a pure function of (seed, step) and the indexed lengths, so a resumed run reads
//! exactly the batches an uninterrupted one would have.

use super::{ShapeBuckets, make_batches_by_length};
use crate::audio::FbankConfig;
use crate::rng::SplitMix64;

/// One utterance of a planned batch: its index entry and the speed to play it at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlannedItem {
    pub entry: usize,
    /// Speed-perturbation factor (1.0: the original audio).
    pub speed: f64,
}

/// How a streamed corpus is cut into batches, epoch after epoch.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    /// Samples of each indexed utterance at 16 kHz.
    samples: Vec<u64>,
    /// Each utterance plays at one of these speeds per epoch (chosen per epoch, per utterance).
    speeds: Vec<f64>,
    fbank: FbankConfig,
    max_batch_frames: usize,
    buckets: ShapeBuckets,
    seed: u64,
}

/// The batches of one epoch and the step at which it starts.
#[derive(Debug, Clone)]
struct Epoch {
    number: usize,
    first_step: usize,
    batches: Vec<Vec<PlannedItem>>,
}

impl StreamPlan {
    pub fn new(
        samples: Vec<u64>,
        speeds: &[f64],
        fbank: &FbankConfig,
        max_batch_frames: usize,
        buckets: ShapeBuckets,
        seed: u64,
    ) -> Self {
        Self {
            samples,
            speeds: if speeds.is_empty() { vec![1.0] } else { speeds.to_vec() },
            fbank: fbank.clone(),
            max_batch_frames,
            buckets,
            seed,
        }
    }

    /// Epoch `number`: every utterance once, at a speed drawn for this epoch, grouped by length.
    fn epoch(&self, number: usize, first_step: usize) -> Epoch {
        let mut speed_rng = SplitMix64::derive(self.seed, &format!("speed-{number}"));
        let speeds: Vec<f64> = self.samples.iter().map(|_| *speed_rng.choose(&self.speeds)).collect();
        let lengths: Vec<usize> = self
            .samples
            .iter()
            .zip(&speeds)
            .map(|(&n, &speed)| self.fbank.num_frames((n as f64 / speed).round() as usize))
            .collect();
        // The same stream name as the in-memory path, so both shuffle alike.
        let mut rng = SplitMix64::derive(self.seed, &format!("epoch-{number}"));
        let plan = make_batches_by_length(&lengths, self.max_batch_frames, self.buckets, &mut rng);
        let batches = plan
            .batches
            .into_iter()
            .map(|batch| {
                batch
                    .into_iter()
                    .map(|entry| PlannedItem {
                        entry,
                        speed: speeds[entry],
                    })
                    .collect()
            })
            .collect();
        Epoch {
            number,
            first_step,
            batches,
        }
    }

    /// A cursor at the start of the run.
    pub fn cursor(&self) -> StepCursor<'_> {
        StepCursor {
            plan: self,
            epoch: None,
        }
    }
}

/// Walks a [`StreamPlan`] forward step by step, keeping only the current epoch's batches.
pub struct StepCursor<'a> {
    plan: &'a StreamPlan,
    epoch: Option<Epoch>,
}

impl StepCursor<'_> {
    /// The epoch (from 0) and batch of `step`. Steps must not go backwards.
    pub fn batch_at(&mut self, step: usize) -> (usize, Vec<PlannedItem>) {
        let mut epoch = self.epoch.take().unwrap_or_else(|| self.plan.epoch(0, 0));
        assert!(step >= epoch.first_step, "the cursor only moves forward");
        while step >= epoch.first_step + epoch.batches.len() {
            epoch = self
                .plan
                .epoch(epoch.number + 1, epoch.first_step + epoch.batches.len());
        }
        let batch = epoch.batches[step - epoch.first_step].clone();
        let number = epoch.number;
        self.epoch = Some(epoch);
        (number, batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(seed: u64) -> StreamPlan {
        let samples: Vec<u64> = (0..40).map(|i| 16_000 + 1_600 * (i % 7)).collect();
        StreamPlan::new(
            samples,
            &[0.9, 1.0, 1.1],
            &FbankConfig::default(),
            1_000,
            ShapeBuckets::default(),
            seed,
        )
    }

    #[test]
    fn each_epoch_covers_every_utterance_once_within_the_budget() {
        let plan = plan(3);
        let mut cursor = plan.cursor();
        let (_, first) = cursor.batch_at(0);
        assert!(!first.is_empty());
        let mut seen = Vec::new();
        let mut step = 0;
        loop {
            let (epoch, batch) = cursor.batch_at(step);
            if epoch > 0 {
                break;
            }
            let longest = batch
                .iter()
                .map(|i| FbankConfig::default().num_frames((plan.samples[i.entry] as f64 / i.speed).round() as usize))
                .max()
                .unwrap();
            assert!(batch.len() == 1 || longest * batch.len() <= 1_000);
            seen.extend(batch.iter().map(|i| i.entry));
            step += 1;
        }
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_cursor_started_late_sees_the_same_batches() {
        let plan = plan(9);
        let mut from_start = plan.cursor();
        let all: Vec<_> = (0..60).map(|s| from_start.batch_at(s)).collect();
        let mut late = plan.cursor();
        assert_eq!(late.batch_at(37), all[37]);
        assert_eq!(late.batch_at(59), all[59]);
        // Several epochs in, speeds differ between epochs.
        assert!(all.iter().any(|(e, _)| *e >= 2));
        let speeds = |epoch: usize| -> Vec<f64> {
            all.iter()
                .filter(|(e, _)| *e == epoch)
                .flat_map(|(_, b)| b.iter().map(|i| i.speed))
                .collect()
        };
        assert_ne!(speeds(0), speeds(1));
    }
}
