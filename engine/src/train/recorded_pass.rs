//! The training step's pass recorded once and replayed: the model's forward pass, the CTC loss
//! and the backward pass on one batch (issue 32's item 3 as far as it goes: the update, and
//! dropout that changes from step to step, are not in it yet).
//!
//! [`bench_recorded_pass`] times that pass eager and replayed, in alternation, and checks that a
//! replay computes what the eager pass does. The queueing time is the host's share: where the
//! device is fast (a GPU) it is the pass, and it is what recording removes. Both front doors run
//! it (`prunelab bench --recorded-pass`, and the lab's measurement probe in the page).

use burn::prelude::*;

use super::objective::BatchCtc;
use crate::audio::FeatureStats;
use crate::data::{ShapeBuckets, Utterance};
use crate::infer::{Clock, prepare_batch};
use crate::model::{Conformer, seed_hashed_dropout};
use crate::readback::read_floats;
use crate::record::{RecordError, record, wait_for_device};
use crate::stats::median;

/// Eager against replayed, medians over the repeats (milliseconds).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordedPassBench {
    /// The batch: utterances, and feature frames each is padded to.
    pub utterances: usize,
    pub frames: usize,
    /// Eager passes and replays timed (one of each per round, in turns).
    pub repeats: usize,
    /// Until the pass is queued and handed to the device (the host's work), and until the
    /// device has finished it.
    pub eager_queue_ms: f64,
    pub eager_ms: f64,
    pub replay_queue_ms: f64,
    pub replay_ms: f64,
    /// Largest difference between the output layer's weight gradient replayed and computed
    /// eagerly on the same batch, relative to the largest magnitude of the eager one.
    pub largest_difference: f32,
}

/// A timed pass, as [`bench_recorded_pass`] tells an observer about it: a front door that can
/// count what the device was asked (the page counts WebGPU calls) counts between the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedPass {
    /// Before the pass is queued.
    Starting { replayed: bool },
    /// Once it is queued and handed to the device (not yet waited for).
    Queued { replayed: bool },
}

/// Times the training pass on `utterances` (normalised by `stats`, no augmentation) through
/// `model` on `device` (an autodiff device) `repeats` times eager and as many times replayed,
/// telling `observe` about each timed pass. Dropout draws the same masks in every run (the
/// seeds are fixed here, as a recording fixes them). The model's BatchNorm statistics are as
/// they were afterwards.
pub async fn bench_recorded_pass(
    model: &Conformer,
    utterances: &[&Utterance],
    stats: &FeatureStats,
    device: &Device,
    repeats: usize,
    clock: &dyn Clock,
    observe: &dyn Fn(TimedPass),
) -> Result<RecordedPassBench, RecordError> {
    let prepared = prepare_batch(utterances, stats, None, ShapeBuckets::default(), device);
    let frames = prepared.feats.dims()[1];
    // Made before the pass: an upload inside it would fail the recording.
    let (padding, lengths) = Conformer::subsampled_padding(&prepared.batch.frame_lengths, frames, device);
    let ctc = BatchCtc::new(&prepared.batch, &lengths, prepared.targets.clone(), device);
    let saved_stats = model.running_stats();
    let pass = || {
        // Every run from the same BatchNorm statistics (`record::record` needs the same state
        // each run; the pass moves them).
        model.restore_running_stats(saved_stats.clone());
        device.seed(0x5eed);
        seed_hashed_dropout(0x5eed);
        let output = model.forward_padded(prepared.feats.clone(), &padding, lengths.clone(), &[]);
        let loss = ctc.loss(output.logits, &prepared.batch, &output.lengths);
        let grads = loss.backward();
        model.head.weight.val().grad(&grads).expect("the output layer trains")
    };
    let result = time_both(&pass, device, repeats, clock, observe).await;
    model.restore_running_stats(saved_stats);
    let (eager, replayed, [eager_queue, eager_total, replay_queue, replay_total]) = result?;
    Ok(RecordedPassBench {
        utterances: utterances.len(),
        frames,
        repeats,
        eager_queue_ms: eager_queue,
        eager_ms: eager_total,
        replay_queue_ms: replay_queue,
        replay_ms: replay_total,
        largest_difference: largest_relative_difference(&replayed, &eager),
    })
}

/// The eager pass's and a replay's outputs, and the medians of the eager queueing and total
/// times and the replay's.
async fn time_both<const D: usize>(
    pass: &dyn Fn() -> Tensor<D>,
    device: &Device,
    repeats: usize,
    clock: &dyn Clock,
    observe: &dyn Fn(TimedPass),
) -> Result<(Vec<f32>, Vec<f32>, [f64; 4]), RecordError> {
    let recording = record(device, pass).await?;
    let mut times: [Vec<f64>; 4] = Default::default();
    let mut eager_values = Vec::new();
    for round in 0..repeats.max(1) {
        // Alternate which goes first, so a drift in the machine's speed falls on both alike.
        for replayed in [round % 2 == 1, round % 2 == 0] {
            observe(TimedPass::Starting { replayed });
            let start = clock.seconds();
            let output = if replayed {
                // Safety: everything the pass reads (the model, the features, the padding, the
                // loss's plan) is borrowed for the whole of this function, and this thread is
                // the only one using them.
                unsafe { recording.replay() }?.clone()
            } else {
                pass()
            };
            let _ = device.flush();
            let queued = clock.seconds();
            observe(TimedPass::Queued { replayed });
            wait_for_device(device).await?;
            let done = clock.seconds();
            let column = if replayed { 2 } else { 0 };
            times[column].push((queued - start) * 1e3);
            times[column + 1].push((done - start) * 1e3);
            if !replayed && round == 0 {
                eager_values = read_floats(output, "the eager pass's gradient").await?;
            }
        }
    }
    let replayed_values = read_floats(recording.output().clone(), "the replay's gradient").await?;
    let medians = times.map(|t| median(&t).unwrap_or(f64::NAN));
    Ok((eager_values, replayed_values, medians))
}

fn largest_relative_difference(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let worst = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    if a.len() == b.len() {
        worst / scale
    } else {
        f32::INFINITY
    }
}
