//! `prunelab train`: one training run from corpus to checkpoint, metrics and final WER.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser};
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::{LoadOptions, Utterance};
use prunelab_engine::gates::{AdaptiveDropoutConfig, GateConfig, HardConcreteConfig, Method, SiteKind};
use prunelab_engine::model::{Preset, weights_fingerprint};
use prunelab_engine::optim::OptimConfig;
use prunelab_engine::prune::{kept_budget, param_count};
use prunelab_engine::store::{decode_checkpoint, encode_checkpoint};
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{DistillConfig, Run, RunOptions, TrainConfig, Trainer, TrainerState};
use serde_json::json;

use crate::atomic::{refuse_overwriting_inputs, write_atomically};
use crate::data::corpus_source::{CorpusChoice, CorpusSource, report_skipped};
use crate::data::stream::{default_workers, featurise_all};
use crate::data::train_data::{TrainData, evenly_spaced};
use crate::options::decoding::DecodeArgs;
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::{at_least_one, between, parse_method, parse_preset, parse_site};
use crate::reports::train_report::FinalScores;
use crate::run::dir::RunDir;
use crate::run::driver::{LoopEnd, LoopSettings, RunRecords, new_trace, run_loop};
use crate::run::interrupt;
use crate::run::tensorboard::Scalars;

#[derive(Args)]
pub struct TrainArgs {
    /// Model size: tiny (≈1.3 M params), small (≈10 M), medium (≈30 M).
    #[arg(long, default_value = "tiny", value_parser = parse_preset)]
    preset: Preset,
    /// Optimiser steps (default: the preset's run length).
    #[arg(long)]
    steps: Option<usize>,
    /// Output directory for checkpoint.plc, metrics.jsonl, summary.json and hypotheses.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Seed for initialisation, data order, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Threads each batch is split over, each with its own copy of the model (default: 2 on
    /// the CPU backend, 1 on wgpu). Part of the run's configuration: the same seed and shard
    /// count give the same weights on any machine.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: Option<u64>,
    #[command(flatten)]
    corpus: CorpusChoice,
    /// Start from this trained dense model instead of random weights: a checkpoint of the same
    /// preset, or its weights alone (--weights-out). The run begins at step 0 with a fresh
    /// optimiser and fresh gates, and uses the model's feature statistics.
    #[arg(long)]
    init_from: Option<PathBuf>,
    /// Also write the final model alone (config, feature statistics and weights; a third of a
    /// checkpoint's size) to this file, e.g. the lab's trained start or a teacher.
    #[arg(long)]
    weights_out: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint, with the options it was
    /// started with (saved in DIR/run.json); takes no other options.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Save a checkpoint every this many steps (and when stopped or finished).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    checkpoint_every: u64,
    /// Checkpoints kept in DIR/checkpoints (older ones are deleted).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    keep_checkpoints: u64,
    /// Replace an earlier run in --out: its checkpoints and results are deleted once
    /// everything this run needs has been checked. Without it, a directory holding a run is
    /// refused (--resume continues one).
    #[arg(long)]
    overwrite: bool,
    /// Stop the run after this many steps in a row with a non-finite loss (each is skipped
    /// without touching the weights).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    max_bad_steps: u64,
    /// Peak learning rate.
    #[arg(long, default_value_t = OptimConfig::default().peak_lr)]
    lr: f64,
    /// Steps of linear learning-rate warm-up (default: the preset's).
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Evaluate on dev every this many steps (0: only at the end).
    #[arg(long)]
    eval_every: Option<usize>,
    /// Padded frames per batch (100 frames = 1 s of audio).
    #[arg(long, conflicts_with = "max_batch_seconds")]
    max_batch_frames: Option<usize>,
    /// Padded seconds of audio per batch (batch size × longest utterance).
    #[arg(long)]
    max_batch_seconds: Option<f64>,
    /// Speed-perturbation factors, comma-separated; each training utterance plays at one of
    /// them (`1` turns perturbation off). Default 0.9,1,1.1.
    #[arg(long, value_delimiter = ',')]
    speed_perturb: Vec<f64>,
    /// Train on this share of the training split's recorded utterances, every k-th in id order
    /// (so every speaker keeps about the same share), e.g. 0.25 for a model that is large for
    /// its data. Built-in corpus and train/dev/test trees only.
    #[arg(long, default_value_t = 1.0)]
    train_share: f64,
    /// Feature-extraction threads for a streamed corpus (default: one per core).
    #[arg(long, value_parser = between::<1, 256>)]
    workers: Option<usize>,
    /// LibriSpeech: dev utterances scored at each periodic evaluation (evenly spaced; the final
    /// evaluation scores every one).
    #[arg(long, value_parser = at_least_one, default_value_t = 400)]
    dev_utterances: usize,
    /// LibriSpeech: training utterances whose features set the normalisation statistics.
    #[arg(long, value_parser = at_least_one, default_value_t = 2000)]
    stats_utterances: usize,
    /// Fail on the first bad corpus item instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print the final result as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Decoder for the final dev/test scores (periodic dev scores are greedy).
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    prune: PruneArgs,
}

/// How the run learns what to prune.
#[derive(Args)]
struct PruneArgs {
    /// Pruning method: none (dense), adaptive-dropout (learned retention per unit), l0
    /// (hard-concrete masks driven to --target-sparsity) or magnitude (dense training, cut by
    /// weight norms to --budget at --prune-at, then fine-tuned).
    #[arg(long, default_value = "none", value_parser = parse_method)]
    method: Method,
    /// Gated sites, comma-separated (default: all of ffn1.hidden, attn.query, attn.value, conv.input, ffn2.hidden).
    #[arg(long, value_delimiter = ',', value_parser = parse_site)]
    sites: Vec<SiteKind>,
    /// Adaptive dropout: strength alpha of the pull towards the falling target.
    #[arg(long, default_value_t = AdaptiveDropoutConfig::default().strength)]
    strength: f64,
    /// Adaptive dropout: Gumbel-sigmoid temperature.
    #[arg(long, default_value_t = AdaptiveDropoutConfig::default().temperature)]
    temperature: f64,
    /// Adaptive dropout: fraction of the run over which the regulariser's target falls from
    /// --target-start to --target-end; it then stays there (1: the whole run).
    #[arg(long, default_value_t = AdaptiveDropoutConfig::default().ramp_fraction)]
    target_ramp: f64,
    /// Adaptive dropout: fraction of the run after which the strength alpha falls linearly to 0
    /// at the end (1: never). Without the pull, the gates the loss needs rise towards 1
    /// before the cut.
    #[arg(long, default_value_t = AdaptiveDropoutConfig::default().strength_fade_from)]
    strength_fade_from: f64,
    /// Adaptive dropout: the logit every unit starts at (3 is a retention of 0.95).
    #[arg(long, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().initial_logit)]
    initial_logit: f64,
    /// Adaptive dropout: where the regulariser's target starts, as a logit. With
    /// --initial-logit and --target-end it sets the logit scale; doubling all three and halving
    /// --strength was measured in docs/results.md (session 11): it did not make the kept units'
    /// retention more decided.
    #[arg(long, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().target_start)]
    target_start: f64,
    /// Adaptive dropout: where the regulariser's target ends (see --target-start).
    #[arg(long, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().target_end)]
    target_end: f64,
    /// Adaptive dropout: the FFN hidden gates replace that layer's standard dropout, so kept
    /// units are not dropped twice.
    #[arg(long)]
    replace_dropout: bool,
    /// Learning rate of the gate parameters (their own Adam).
    #[arg(long, default_value_t = GateConfig::default().lr)]
    gate_lr: f64,
    /// Retention threshold for the final evaluation (units below it are pruned).
    #[arg(long, default_value_t = GateConfig::default().threshold)]
    threshold: f64,
    /// Record every unit's retention every this many steps in trace.pltrace.
    #[arg(long, default_value_t = GateConfig::default().snapshot_every)]
    snapshot_every: usize,
    /// L0: expected sparsity of the prunable parameters to drive the run to.
    #[arg(long, default_value_t = HardConcreteConfig::default().target_sparsity)]
    target_sparsity: f64,
    /// Distil from this unpruned checkpoint (same preset): KL on CTC posteriors plus MSE between
    /// mapped block outputs.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Weight of the KL term (with --teacher).
    #[arg(long, default_value_t = DistillConfig::default().kl_weight)]
    kl_weight: f64,
    /// Weight of the layer-wise MSE term (with --teacher).
    #[arg(long, default_value_t = DistillConfig::default().layer_weight)]
    layer_weight: f64,
    /// Magnitude: prune to this many parameters (or this fraction of the model, e.g. 0.5)
    /// once `--prune-at` of the run is done, then fine-tune the smaller model for the rest.
    #[arg(long)]
    budget: Option<f64>,
    /// Magnitude: fraction of the steps after which to prune.
    #[arg(long, default_value_t = GateConfig::default().magnitude_prune_at)]
    prune_at: f64,
}

impl PruneArgs {
    fn apply(&self, config: &mut GateConfig) {
        config.method = self.method;
        if !self.sites.is_empty() {
            config.sites = self.sites.clone();
        }
        let ad = &mut config.adaptive_dropout;
        ad.strength = self.strength;
        ad.temperature = self.temperature;
        ad.ramp_fraction = self.target_ramp;
        ad.strength_fade_from = self.strength_fade_from;
        ad.initial_logit = self.initial_logit;
        ad.target_start = self.target_start;
        ad.target_end = self.target_end;
        ad.replaces_dropout |= self.replace_dropout;
        config.lr = self.gate_lr;
        config.threshold = self.threshold;
        config.snapshot_every = self.snapshot_every;
        config.magnitude_budget = self.budget.or(config.magnitude_budget);
        config.l0.target_sparsity = self.target_sparsity;
        config.magnitude_prune_at = self.prune_at;
    }
}

/// The options a run was started with, re-read from its `run.json` for `--resume`.
#[derive(Parser)]
struct SavedCommand {
    #[command(flatten)]
    args: TrainArgs,
}

/// `prunelab train`; `raw_args` are the arguments after `train`, saved for `--resume`.
pub fn run(args: TrainArgs, raw_args: Vec<String>) -> Result<(), String> {
    let Some(dir) = args.resume.clone() else {
        return train(args, raw_args, false);
    };
    let others: Vec<&String> = raw_args
        .iter()
        .filter(|a| *a != "--resume" && !a.starts_with("--resume=") && Path::new(a) != dir)
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "--resume takes no other options (got {others:?}); the run continues with the options in {}",
            dir.join("run.json").display()
        ));
    }
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (saved, cwd) = RunDir::load_invocation(&dir)?;
    // Relative paths in the saved options (corpus, teacher) are relative to where the run began.
    std::env::set_current_dir(&cwd).map_err(|e| {
        format!(
            "{}: the run was started in {}, which is gone ({e})",
            dir.join("run.json").display(),
            cwd.display()
        )
    })?;
    let parsed = SavedCommand::try_parse_from(std::iter::once("prunelab train".to_string()).chain(saved.clone()))
        .map_err(|e| {
            format!(
                "{}: the saved options do not parse: {e}",
                dir.join("run.json").display()
            )
        })?;
    let mut args = parsed.args;
    args.out = dir;
    train(args, saved, true)
}

/// A fresh run may replace the one in --out only when asked to, and only if what it reads
/// does not live in what it would delete.
fn check_replaceable(args: &TrainArgs) -> Result<(), String> {
    if !args.overwrite {
        return Err(format!(
            "{} holds an earlier run; continue it with --resume {0}, or pass --overwrite to replace it",
            args.out.display()
        ));
    }
    let out = std::fs::canonicalize(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    for (flag, path) in [("--init-from", &args.init_from), ("--teacher", &args.prune.teacher)] {
        if let Some(path) = path
            && std::fs::canonicalize(path).is_ok_and(|p| p.starts_with(&out))
        {
            return Err(format!(
                "{flag} {} is inside the run --overwrite would delete; copy it elsewhere first",
                path.display()
            ));
        }
    }
    let scalars = args.out.join("tensorboard");
    if scalars.exists() && !scalars.is_dir() {
        return Err(format!(
            "{}: is not a directory; a run writes its scalars there",
            scalars.display()
        ));
    }
    Ok(())
}

/// The run's configuration from its options.
fn config_from(args: &TrainArgs, on_cpu: bool) -> Result<TrainConfig, String> {
    let mut config = TrainConfig::for_preset(args.preset, CharTokenizer.vocab_size());
    config.seed = args.seed;
    // Two shards use both cores of a small machine for the CPU backend's small operations; a
    // GPU runs a whole batch at once.
    config.shards = args.shards.map_or(if on_cpu { 2 } else { 1 }, |n| n as usize);
    config.steps = args.steps.unwrap_or(config.steps);
    config.optim.peak_lr = args.lr;
    config.optim.warmup_steps = args.warmup_steps.unwrap_or(config.optim.warmup_steps);
    config.eval_every = args.eval_every.unwrap_or(config.eval_every);
    config.max_batch_frames = match (args.max_batch_frames, args.max_batch_seconds) {
        (Some(frames), _) => frames,
        (None, Some(seconds)) if seconds.is_finite() && seconds > 0.0 => (seconds * 100.0).round() as usize,
        (None, Some(seconds)) => return Err(format!("--max-batch-seconds {seconds} must be a positive number")),
        (None, None) => config.max_batch_frames,
    };
    if !args.speed_perturb.is_empty() {
        if let Some(bad) = args.speed_perturb.iter().find(|s| !(0.5..=2.0).contains(*s)) {
            return Err(format!("--speed-perturb factor {bad} is outside [0.5, 2]"));
        }
        config.speed_perturbation = args.speed_perturb.clone();
    }
    config.train_share = args.train_share;
    args.prune.apply(&mut config.prune);
    if let Some(path) = &args.prune.teacher {
        config.distill = Some(DistillConfig {
            teacher: path.display().to_string(),
            kl_weight: args.prune.kl_weight,
            layer_weight: args.prune.layer_weight,
        });
    }
    config.validate().map_err(|e| e.to_string())?;
    check_magnitude_budget(&config)?;
    // The default warm-up may outlast a short test run; a warm-up asked for may not.
    if let Some(warmup) = args.warmup_steps.filter(|&w| w > config.steps) {
        return Err(format!(
            "--warmup-steps {warmup} is longer than the run's {} steps",
            config.steps
        ));
    }
    Ok(config)
}

/// A magnitude run cuts at `--prune-at` of the run; a budget that cannot be met must fail
/// now, not hours in.
fn check_magnitude_budget(config: &TrainConfig) -> Result<(), String> {
    let Some((_, budget)) = config.prune.magnitude_cut(config.steps) else {
        return Ok(());
    };
    let dense = param_count(&config.model, &config.model.shapes()).total();
    if kept_budget(budget, dense) >= dense {
        return Err(format!(
            "--budget {budget} keeps at least the model's {dense} parameters: nothing to prune"
        ));
    }
    Ok(())
}

/// The model alone, for `--weights-out`.
fn write_weights(path: &Path, state: &TrainerState) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
    }
    write_atomically(path, &encode_checkpoint(&state.weights_only()))?;
    tell!("weights written to {}", path.display());
    Ok(())
}

/// The teacher checkpoint named in the config (distillation runs only).
fn read_teacher(config: &TrainConfig) -> Result<Option<TrainerState>, String> {
    let Some(distill) = &config.distill else {
        return Ok(None);
    };
    read_state(Path::new(&distill.teacher), "teacher").map(Some)
}

/// A checkpoint (full or weights only) read for `role` ("teacher", "start").
fn read_state(path: &Path, role: &str) -> Result<TrainerState, String> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read the {role}: {e}"))?;
    decode_checkpoint(&bytes, &name).map_err(|e| e.to_string())
}

/// A new run's trainer: from random weights, or from the trained model of `--init-from`.
fn fresh_trainer(
    args: &TrainArgs,
    config: TrainConfig,
    data: &TrainData,
    teacher: Option<&TrainerState>,
    device: &Device,
) -> Result<Trainer, String> {
    let trainer = match &args.init_from {
        Some(path) => {
            let start = read_state(path, "start")?;
            Trainer::warm_start(config, &start, device).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => {
            let stats = data.feature_stats(&config, args.stats_utterances)?;
            Trainer::new(config, stats, device)
        }
    };
    if teacher.is_some_and(|t| t.stats != trainer.stats) {
        return Err("the teacher was trained with other feature statistics (another corpus?)".into());
    }
    Ok(trainer)
}

fn train(args: TrainArgs, invocation: Vec<String>, resuming: bool) -> Result<(), String> {
    if let Some(weights_out) = &args.weights_out {
        let inputs: Vec<&Path> = [&args.init_from, &args.prune.teacher]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect();
        refuse_overwriting_inputs("--weights-out", weights_out, &inputs)?;
    }
    let replacing = !resuming && RunDir::holds_run(&args.out);
    // A run killed before its first checkpoint left only run.json (and perhaps a temporary):
    // the directory is a run's all the same, and its leftovers are cleared like a resumed one's.
    let earlier_run_here = resuming || replacing || RunDir::has_invocation(&args.out);
    if replacing {
        check_replaceable(&args)?;
    }
    // Nothing in --out is created or deleted until everything below has checked out.
    let run = RunDir::at(&args.out);
    let (device, device_label) = pick(args.device)?;
    let corpus = args.corpus.open()?;
    let decoder = args.decode.build(&corpus)?;
    let workers = args.workers.unwrap_or_else(default_workers).max(1);
    tell!("corpus {} · device {device_label}", corpus.describe());

    let restored = if resuming {
        let (path, state) = run.latest_checkpoint()?;
        // A slim checkpoint's optimiser moments are gone: going on would restart them, and the
        // run would no longer be the one its options describe.
        if state.optimizer.is_empty() && state.step < state.config.steps {
            return Err(format!(
                "{}: holds no optimiser state (a slim or weights-only checkpoint), so the run cannot go on from step {}",
                path.display(),
                state.step
            ));
        }
        tell!(
            "resuming {} from {} (step {})",
            args.out.display(),
            path.display(),
            state.step
        );
        Some(state)
    } else {
        None
    };
    let config = match &restored {
        Some(state) => state.config.clone(),
        None => config_from(&args, device == Device::flex())?,
    };
    let teacher = read_teacher(&config)?;
    let mut data = TrainData::open(&corpus, &config, args.strict, workers)?;
    let dev = dev_probe(&corpus, &config, args.strict, args.dev_utterances)?;
    let mut trainer = match restored {
        Some(state) => Trainer::restore(state, &device).map_err(|e| e.to_string())?,
        None => fresh_trainer(&args, config, &data, teacher.as_ref(), &device)?,
    };
    if let Some(teacher) = &teacher {
        let name = trainer
            .config
            .distill
            .as_ref()
            .map_or("", |d| d.teacher.as_str())
            .to_string();
        trainer.attach_teacher(teacher).map_err(|e| format!("{name}: {e}"))?;
    }
    tell!(
        "train {} · dev probe {} utts · preset {} · {} parameters · {} steps · batches split over {} thread(s)",
        data.describe(),
        dev.len(),
        trainer.config.preset.name(),
        trainer.inference_model().num_params(),
        trainer.config.steps,
        trainer.config.shards
    );
    rehearse_largest_batch(&mut trainer, &data);
    // Everything has checked out (the largest batch included): only now is --out touched.
    if replacing {
        let replaced = run.clear_earlier_run()?;
        tell!(
            "replacing the earlier run in {} ({replaced} step checkpoint(s) deleted)",
            args.out.display()
        );
    }
    run.prepare(earlier_run_here)?;
    if !resuming {
        run.save_invocation(&invocation)?;
    }
    let first_step = trainer.step();
    run.truncate_metrics(first_step)?;
    let mut trace = match resuming {
        true => run.load_trace(first_step)?.unwrap_or_else(|| new_trace(&trainer)),
        false => new_trace(&trainer),
    };
    let mut metrics = open_metrics(&run.path("metrics.jsonl"), resuming)?;
    let gated = trainer.config.prune.gate_kind().is_some();
    let mut scalars = Scalars::start(&run.path("tensorboard"), &trace, gated)?;
    interrupt::install()?;
    let settings = LoopSettings {
        run: &run,
        keep_checkpoints: args.keep_checkpoints as usize,
        max_bad_steps: args.max_bad_steps as usize,
        strict: args.strict,
    };
    let options = RunOptions {
        dev,
        checkpoint_every: Some(args.checkpoint_every as usize),
        decoder: None,
    };
    let mut scheduled = Run::new(trainer, options);
    let started = Instant::now();
    let records = RunRecords {
        metrics: &mut metrics,
        trace: &mut trace,
        scalars: &mut scalars,
    };
    let outcome = run_loop(&mut scheduled, &mut data, &settings, records)?;
    let trainer = scheduled.into_trainer();
    let skipped_at_load = data.skipped_at_load();
    drop(data);
    if outcome.end == LoopEnd::Interrupted {
        tell!("continue with: prunelab train --resume {}", args.out.display());
        std::process::exit(130);
    }
    let seconds = started.elapsed().as_secs_f64();
    let state = trainer.state().map_err(|e| e.to_string())?;
    write_atomically(&run.path("checkpoint.plc"), &encode_checkpoint(&state))?;
    if let Some(path) = &args.weights_out {
        write_weights(path, &state)?;
    }
    let finals = FinalScores::compute(&trainer, &corpus, &decoder, args.strict, workers)?;
    finals.write_hypotheses(&run)?;
    let fingerprint = weights_fingerprint(&trainer.inference_model()).map_err(|e| e.to_string())?;
    let summary = finals.summary(json!({
        "preset": trainer.config.preset.name(),
        "device": device_label,
        "steps": trainer.step(),
        "first_step": first_step,
        "skipped_steps": trainer.skipped_steps(),
        "train_seconds": seconds,
        "parameters": trainer.inference_model().num_params(),
        // Equal on two runs exactly when their final weights are bit-identical.
        "weights_fingerprint": format!("{fingerprint:016x}"),
        "skipped_items": skipped_at_load + outcome.skipped_items + finals.skipped_items(),
        "epochs": outcome.epoch.map(|e| e + 1),
        "decoder": decoder.describe(),
    }));
    let summary_path = run.path("summary.json");
    let summary_text = serde_json::to_string_pretty(&summary)
        .map_err(|e| format!("{}: cannot write the summary: {e}", summary_path.display()))?;
    write_atomically(&summary_path, summary_text.as_bytes())?;
    if args.json {
        say!("{summary}");
    } else {
        say!(
            "trained {} steps in {:.0} s on {device_label}",
            trainer.step() - first_step,
            seconds
        );
        say!("decoder: {}", decoder.describe());
        finals.print()?;
        say!("checkpoint: {}", run.path("checkpoint.plc").display());
    }
    Ok(())
}

/// One forward and backward pass on the largest batch before the first step, so a batch budget
/// too large for the device fails now, not hours into the run.
fn rehearse_largest_batch(trainer: &mut Trainer, data: &TrainData) {
    let largest = data.largest_batch(&trainer.config);
    let refs: Vec<&Utterance> = largest.iter().collect();
    let padded = refs.len() * refs.iter().map(|u| u.frames).max().unwrap_or(0);
    let started = Instant::now();
    trainer.rehearse(&refs);
    tell!(
        "rehearsed the largest batch ({} utts, {:.0} s padded) in {:.1} s",
        refs.len(),
        padded as f64 / 100.0,
        started.elapsed().as_secs_f64()
    );
}

/// The dev utterances scored at each periodic evaluation: the whole dev split of a small corpus,
/// `count` evenly spaced ones of LibriSpeech's.
fn dev_probe(
    corpus: &CorpusSource,
    config: &TrainConfig,
    strict: bool,
    count: usize,
) -> Result<Vec<Utterance>, String> {
    let plain = LoadOptions::plain(&config.fbank, strict);
    if !matches!(corpus, CorpusSource::LibriSpeech { .. }) {
        return Ok(corpus.load("dev", &plain)?.utterances);
    }
    let index = corpus.index(&corpus.subsets("dev"), strict)?;
    let picked = evenly_spaced(&index.entries, count.max(1));
    let (utterances, skipped) = featurise_all(&picked, &config.fbank, default_workers());
    report_skipped(&skipped, "the dev probe");
    if utterances.is_empty() {
        return Err("no dev utterance could be read".into());
    }
    Ok(utterances)
}

fn open_metrics(path: &Path, append: bool) -> Result<std::io::LineWriter<std::fs::File>, String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .open(path)
        .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    Ok(std::io::LineWriter::new(file))
}
