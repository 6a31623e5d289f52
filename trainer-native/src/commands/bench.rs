//! `prunelab bench`: training-step time and inference real-time factor per preset, with the
//! share of a training step spent in each part of the model, and a whole `Trainer` step with
//! its batch split over 1, 2, … threads. Medians of repeated runs.
//!
//! Parts are timed one at a time (forward + backward on inputs of the real shapes), so their
//! sum need not equal the full step: the full step also pays for graph bookkeeping.

use std::time::Instant;

use clap::Args;
use prunelab_engine::audio::{FbankConfig, FeatureStats};
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::optim::{AdamWConfig, GradientsParams};
use prunelab_engine::burn::prelude::*;
use prunelab_engine::burn::tensor::Distribution;
use prunelab_engine::data::Utterance;
use prunelab_engine::kernels::{OpsPath, ops_path, runs_fused, with_ops_path};
use prunelab_engine::model::{Conformer, ConvSubsampling, Padding, Preset};
use prunelab_engine::optim::{FlatAdam, FlatAdamConfig};
use prunelab_engine::readback::block_on;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{StepBatch, TrainConfig, Trainer, bench_recorded_pass, ctc_loss};
use serde::Serialize;

use crate::commands::bench_pipeline::PipelineBench;
use crate::models::timing::WallClock;
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::{between, parse_preset, seconds_up_to};
use prunelab_engine::stats::median;

#[derive(Args)]
pub struct BenchArgs {
    /// Presets to measure (default: all three).
    #[arg(long, value_parser = parse_preset, num_args = 1..)]
    preset: Vec<Preset>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Utterances per training batch.
    #[arg(long, value_parser = between::<1, 1024>, default_value_t = 8)]
    batch: usize,
    /// Seconds of audio per utterance.
    #[arg(long, value_parser = seconds_up_to::<600>, default_value_t = 4.0)]
    seconds: f64,
    /// Timed repetitions per measurement (after one warm-up run).
    #[arg(long, value_parser = between::<1, 1000>, default_value_t = 5)]
    repeats: usize,
    /// Shard counts to time a whole `Trainer` step with (the batch split over this many threads).
    #[arg(long, value_parser = between::<1, 64>, value_delimiter = ',', default_value = "1,2")]
    shards: Vec<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Time the training pass (forward, CTC loss, backward) eager against recorded once and
    /// replayed, on a cube device (wgpu), instead of the step benchmarks: the host's share of a
    /// pass, which recording removes, and a replay's agreement with the eager pass.
    #[arg(long)]
    recorded_pass: bool,
    /// Benchmark the LibriSpeech data path of this tree instead (indexing, feature extraction,
    /// streaming memory, training throughput of --preset, default small, and the peak memory
    /// of one step on a long batch).
    #[arg(long)]
    pipeline: Option<std::path::PathBuf>,
    /// Subsets of the --pipeline tree to read.
    #[arg(long, value_delimiter = ',', default_value = "train-clean-100")]
    pipeline_subsets: Vec<String>,
    /// Utterances featurised for the feature-extraction rate.
    #[arg(long, value_parser = between::<1, 1_000_000>, default_value_t = 400)]
    featurise_utterances: usize,
    /// Streamed steps for the memory trace (batches of --stream-batch-seconds).
    #[arg(long, value_parser = between::<1, 1_000_000>, default_value_t = 200)]
    stream_steps: usize,
    #[arg(long, value_parser = seconds_up_to::<3600>, default_value_t = 100.0)]
    stream_batch_seconds: f64,
    /// Training steps timed on streamed batches (after one warm-up step).
    #[arg(long, value_parser = between::<1, 10_000>, default_value_t = 4)]
    train_steps: usize,
    #[arg(long, value_parser = seconds_up_to::<3600>, default_value_t = 60.0)]
    train_batch_seconds: f64,
    /// Padded seconds of audio in the batch whose peak memory is measured.
    #[arg(long, value_parser = seconds_up_to::<3600>, default_value_t = 200.0)]
    peak_batch_seconds: f64,
}

#[derive(Serialize)]
struct PresetBench {
    preset: &'static str,
    parameters: usize,
    batch: usize,
    seconds_per_utterance: f64,
    /// One step with flat AdamW (`FlatAdam`, the trainer's optimiser; here without clipping).
    train_step_ms: f64,
    /// The same step with burn's per-tensor AdamW.
    train_step_per_tensor_ms: f64,
    /// The flat step on burn's composed operations (`--ops reference`), timed in alternation
    /// with the fused one, where the device has fused operations (`None` elsewhere: there the
    /// two are the same step). `train_step_ms` is then the median of the fused half.
    train_step_reference_ms: Option<f64>,
    /// Compute seconds per second of audio, single 10 s utterance, inference.
    inference_rtf: f64,
    /// Milliseconds per part of a training step (forward + backward), all blocks together.
    parts_ms: Vec<(&'static str, f64)>,
    /// `(shards, ms)`: a whole `Trainer` step (SpecAugment, dropout, gradients, AdamW) on the
    /// same batch, split over that many threads.
    trainer_step_ms: Vec<(usize, f64)>,
}

pub fn run(args: BenchArgs) -> Result<(), String> {
    check_batch_fits(args.batch, args.seconds)?;
    let (device, label) = pick(args.device)?;
    if let Some(root) = &args.pipeline {
        let corpus = crate::data::corpus_source::CorpusSource::Layout { root: root.clone() };
        let bench = PipelineBench {
            subsets: args.pipeline_subsets.clone(),
            featurise_utterances: args.featurise_utterances,
            stream_steps: args.stream_steps,
            stream_batch_seconds: args.stream_batch_seconds,
            train_preset: args.preset.first().copied().unwrap_or(Preset::Small),
            train_steps: args.train_steps,
            train_batch_seconds: args.train_batch_seconds,
            peak_batch_seconds: args.peak_batch_seconds,
        };
        let mut report = crate::commands::bench_pipeline::run(&corpus, &bench, &device)?;
        report["device"] = label.clone().into();
        if args.json {
            say!("{report}");
        } else {
            say!("device: {label}");
            crate::commands::bench_pipeline::print(&report)?;
        }
        return Ok(());
    }
    let presets = if args.preset.is_empty() {
        Preset::ALL.to_vec()
    } else {
        args.preset.clone()
    };
    if args.recorded_pass {
        return recorded_passes(&presets, &args, &device, &label);
    }
    let mut results = Vec::new();
    for preset in presets {
        tell!("benchmarking {} on {label} …", preset.name());
        results.push(bench_preset(preset, &args, &device));
    }
    if args.json {
        say!(
            "{}",
            serde_json::json!({ "device": label, "repeats": args.repeats, "presets": results })
        );
        return Ok(());
    }
    say!(
        "device: {label}; medians of {} runs; batch {} × {:.1} s",
        args.repeats,
        args.batch,
        args.seconds
    );
    for r in &results {
        say!(
            "\n{:<7} {:>10} params   train step {:>9.1} ms   inference RTF {:.4}",
            r.preset,
            r.parameters,
            r.train_step_ms,
            r.inference_rtf
        );
        say!(
            "    the same step with burn's per-tensor AdamW: {:>9.1} ms ({:.2}× the flat step's time)",
            r.train_step_per_tensor_ms,
            r.train_step_per_tensor_ms / r.train_step_ms
        );
        if let Some(reference) = r.train_step_reference_ms {
            say!(
                "    the same step on burn's composed operations (--ops reference): {reference:>9.1} ms ({:.2}× the fused step's time)",
                reference / r.train_step_ms
            );
        }
        let (step_parts, other) = r.parts_ms.split_at(r.parts_ms.len() - 1);
        let total: f64 = step_parts.iter().map(|(_, ms)| ms).sum();
        for (part, ms) in step_parts {
            say!("    {part:<12} {ms:>9.1} ms  {:>5.1}%", 100.0 * ms / total);
        }
        for (part, ms) in other {
            say!("    {part}: {ms:.1} ms");
        }
        let single = r.trainer_step_ms.iter().find(|(n, _)| *n == 1).map(|(_, ms)| *ms);
        for (shards, ms) in &r.trainer_step_ms {
            let ratio = single.map_or(String::new(), |one| {
                format!("  {:.2}× the 1-thread step's speed", one / ms)
            });
            say!("    trainer step, batch split over {shards} thread(s): {ms:>9.1} ms{ratio}");
        }
    }
    Ok(())
}

fn median_ms(repeats: usize, device: &Device, mut run: impl FnMut()) -> f64 {
    run(); // warm-up: kernel compilation, allocator growth
    let _ = device.sync();
    let times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            run();
            let _ = device.sync(); // sync point: wait for queued device work
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    median(&times).unwrap_or(f64::NAN)
}

/// Medians in milliseconds of `run(0)`, …, `run(N − 1)`, timed in turn within each repeat (so
/// that drift in the machine's speed falls on all of them alike), after one warm-up round.
fn alternating_medians_ms<const N: usize>(repeats: usize, device: &Device, mut run: impl FnMut(usize)) -> [f64; N] {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(repeats));
    for round in 0..=repeats.max(1) {
        for (which, times) in times.iter_mut().enumerate() {
            let start = Instant::now();
            run(which);
            let _ = device.sync(); // sync point: wait for queued device work
            if round > 0 {
                times.push(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
    }
    times.map(|t| median(&t).unwrap_or(f64::NAN))
}

fn bench_preset(preset: Preset, args: &BenchArgs, device: &Device) -> PresetBench {
    let vocab = CharTokenizer.vocab_size();
    let config = preset.config(80, vocab);
    let ad = device.clone().autodiff();
    let frames = FbankConfig::default().frames_in(args.seconds) as usize;
    let (b, r) = (args.batch, args.repeats);
    let lengths = vec![frames; b];
    let feats = || Tensor::<3>::random([b, frames, 80], Distribution::Normal(0.0, 1.0), &ad);
    let s = ConvSubsampling::output_len(frames);
    let label_len = s / 3;
    let targets = Tensor::<2, Int>::ones([b, label_len], &ad);
    let target_lengths = vec![label_len; b];

    let mut model: Conformer = config.init(&ad);
    let parameters = model.num_params();
    let gradients = |model: &Conformer| {
        let out = model.forward(feats(), &lengths);
        let loss = ctc_loss(out.logits, targets.clone(), &out.lengths, &target_lengths);
        GradientsParams::from_grads(loss.backward(), model)
    };
    // The same step with burn's per-tensor AdamW, the trainer's optimiser before `FlatAdam`
    // (same settings: burn's AdamW defaults), timed first so that both see the same machine.
    let mut per_tensor = AdamWConfig::new().init();
    let mut reference = model.clone();
    let train_step_per_tensor_ms = median_ms(r, device, || {
        let grads = gradients(&reference);
        reference = per_tensor.step(1e-4, reference.clone(), grads);
    });
    drop(reference);
    let mut optim = FlatAdam::new(FlatAdamConfig::adamw(1e-4, None));
    let mut flat_step = |path: OpsPath| {
        with_ops_path(path, || {
            let grads = gradients(&model);
            model = optim.step(1e-4, model.clone(), grads);
        })
    };
    let (train_step_ms, train_step_reference_ms) = if runs_fused(device) {
        let paths = [OpsPath::Fused, OpsPath::Reference];
        let [fused, reference] = alternating_medians_ms(r, device, |which| flat_step(paths[which]));
        (fused, Some(reference))
    } else {
        (median_ms(r, device, || flat_step(ops_path())), None)
    };

    let forward_backward_ms = median_ms(r, device, || {
        let out = model.forward(feats(), &lengths);
        let _ = ctc_loss(out.logits, targets.clone(), &out.lengths, &target_lengths).backward();
    });

    let inference = model.valid();
    let one = Tensor::<3>::random([1, 1000, 80], Distribution::Normal(0.0, 1.0), device);
    let inference_ms = median_ms(r, device, || {
        let _ = inference.forward(one.clone(), &[1000]).logits;
    });

    let hidden = || Tensor::<3>::random([b, s, config.d_model], Distribution::Normal(0.0, 1.0), &ad);
    let padding = Padding::new(&vec![s; b], s, &ad);
    let blocks = config.num_blocks as f64;
    let block = &model.blocks[0];
    // A preset's block is dense: every module is there.
    let (Some(attention), Some(ffn), Some(conv)) = (&block.attention, &block.ffn1, &block.conv) else {
        unreachable!("preset models are dense")
    };
    let backward = |t: Tensor<3>| {
        let _ = t.sum().backward();
    };
    let parts_ms = vec![
        (
            "subsampling",
            median_ms(r, device, || backward(model.subsampling.forward(feats()))),
        ),
        (
            "attention",
            blocks
                * median_ms(r, device, || {
                    backward(attention.forward(hidden(), &padding, Default::default()))
                }),
        ),
        (
            "ffn (both)",
            2.0 * blocks * median_ms(r, device, || backward(ffn.forward(hidden(), None))),
        ),
        (
            "conv module",
            blocks * median_ms(r, device, || backward(conv.forward(hidden(), &padding, None))),
        ),
        (
            "loss",
            median_ms(r, device, || {
                let logits = Tensor::<3>::random([b, s, vocab], Distribution::Default, &ad).require_grad();
                let _ = ctc_loss(logits, targets.clone(), &vec![s; b], &target_lengths).backward();
            }),
        ),
        // The optimiser's share: a full step minus the same step without the update.
        ("optimiser", (train_step_ms - forward_backward_ms).max(0.0)),
        (
            "optimiser, per tensor (burn's AdamW; not in the step)",
            (train_step_per_tensor_ms - forward_backward_ms).max(0.0),
        ),
    ];
    PresetBench {
        preset: preset.name(),
        parameters,
        batch: b,
        seconds_per_utterance: args.seconds,
        train_step_ms,
        train_step_per_tensor_ms,
        train_step_reference_ms,
        inference_rtf: inference_ms / 1000.0 / 10.0,
        parts_ms,
        trainer_step_ms: trainer_steps(preset, args, device),
    }
}

/// A whole `Trainer` step on `args.batch` random utterances, timed for each shard count in
/// `args.shards` (one process, the same batch, medians).
fn trainer_steps(preset: Preset, args: &BenchArgs, device: &Device) -> Vec<(usize, f64)> {
    let vocab = CharTokenizer.vocab_size();
    let batch = random_batch(args);
    let batch: Vec<&Utterance> = batch.iter().collect();
    args.shards
        .iter()
        .map(|&shards| {
            let mut config = TrainConfig::for_preset(preset, vocab);
            config.shards = shards.clamp(1, 64);
            let mut trainer = Trainer::new(config, FeatureStats::identity(80), device);
            let mut failed = None;
            let ms = median_ms(args.repeats, device, || {
                if let Err(e) = block_on(trainer.train_step(StepBatch::Given(&batch))) {
                    failed.get_or_insert(e);
                }
            });
            // A step that failed has no time worth reporting.
            match failed {
                Some(e) => {
                    tell!("{} with {shards} shard(s): a training step failed: {e}", preset.name());
                    (shards, f64::NAN)
                }
                None => (shards, ms),
            }
        })
        .collect()
}

/// `--recorded-pass`: per preset, the training pass on a random batch of `--batch` ×
/// `--seconds`, eager against replayed (`train::bench_recorded_pass`).
fn recorded_passes(presets: &[Preset], args: &BenchArgs, device: &Device, label: &str) -> Result<(), String> {
    if !runs_fused(device) {
        return Err(format!(
            "--recorded-pass needs a device that records passes (--device wgpu); {label} does not"
        ));
    }
    let batch = random_batch(args);
    let batch: Vec<&Utterance> = batch.iter().collect();
    let autodiff = device.clone().autodiff();
    let mut results = Vec::new();
    for &preset in presets {
        tell!("recording {}'s training pass on {label} …", preset.name());
        let model: Conformer = preset.config(80, CharTokenizer.vocab_size()).init(&autodiff);
        let stats = FeatureStats::identity(80);
        let bench = block_on(bench_recorded_pass(
            &model,
            &batch,
            &stats,
            &autodiff,
            args.repeats,
            &WallClock::start(),
            &|_| {},
        ))
        .map_err(|e| format!("{}: {e}", preset.name()))?;
        results.push((preset.name(), bench));
    }
    if args.json {
        let presets: Vec<_> = results
            .iter()
            .map(|(name, b)| serde_json::json!({ "preset": name, "recorded_pass": b }))
            .collect();
        say!(
            "{}",
            serde_json::json!({ "device": label, "repeats": args.repeats, "presets": presets })
        );
        return Ok(());
    }
    say!(
        "device: {label}; medians of {} runs in turns; batch {} × {:.1} s; forward, CTC loss and backward",
        args.repeats,
        args.batch,
        args.seconds
    );
    for (name, b) in &results {
        say!(
            "\n{name:<7} eager    queued in {:>8.1} ms, done in {:>8.1} ms",
            b.eager_queue_ms,
            b.eager_ms
        );
        say!(
            "        replayed queued in {:>8.1} ms, done in {:>8.1} ms   ({:.2}× the host time, {:.2}× the whole)",
            b.replay_queue_ms,
            b.replay_ms,
            b.replay_queue_ms / b.eager_queue_ms,
            b.replay_ms / b.eager_ms
        );
        say!(
            "        a replay against the eager pass: largest difference {:.1e} of scale (output layer's gradient)",
            b.largest_difference
        );
    }
    Ok(())
}

/// `--batch` utterances of random features, `--seconds` long each, with a third as many tokens
/// as frames after the subsampling.
fn random_batch(args: &BenchArgs) -> Vec<Utterance> {
    let frames = FbankConfig::default().frames_in(args.seconds) as usize;
    let tokens = ConvSubsampling::output_len(frames) / 3;
    let mut rng = SplitMix64::new(0);
    (0..args.batch)
        .map(|i| Utterance::random(format!("bench-{i}"), frames, tokens, &mut rng))
        .collect()
}

/// A timed batch is held to training's own limit on a batch (`max_batch_frames`, an hour of
/// audio): `--batch 1024 --seconds 600`, each flag within its range, asked for 19.6 GB and
/// aborted. Refused up front with the product.
fn check_batch_fits(batch: usize, seconds: f64) -> Result<(), String> {
    let frames = batch as f64 * seconds * 100.0;
    prunelab_engine::train::limit::MAX_BATCH_FRAMES
        .check(frames)
        .map(drop)
        .map_err(|_| {
            format!(
                "--batch {batch} × --seconds {seconds} is {:.0} s of audio a step; a batch holds at most an hour \
             (max_batch_frames 360000 at 100 frames a second)",
                batch as f64 * seconds
            )
        })
}
