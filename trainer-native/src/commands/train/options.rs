//! `prunelab train`'s options, and the run configuration they make (checked before anything
//! is read or written).

use std::path::PathBuf;

use clap::{Args, Parser};
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::gates::{AdaptiveDropoutConfig, GateConfig, HardConcreteConfig, Method, SiteKind};
use prunelab_engine::model::Preset;
use prunelab_engine::optim::OptimConfig;
use prunelab_engine::prune::{CutSource, Selection};
use prunelab_engine::readback::block_on;
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{DistillConfig, TrainConfig};

use crate::data::corpus_source::CorpusChoice;
use crate::models::prunable::parse_budget;
use crate::options::decoding::DecodeArgs;
use crate::options::device::DeviceChoice;
use crate::options::parse::{at_least_one, between, finite, parse_method, parse_preset, parse_site};

#[derive(Args)]
pub struct TrainArgs {
    /// Model size: tiny (≈1.3 M params), small (≈10 M), medium (≈30 M).
    #[arg(long, default_value = "tiny", value_parser = parse_preset)]
    pub(super) preset: Preset,
    /// Optimiser steps (default: the preset's run length).
    #[arg(long)]
    pub(super) steps: Option<usize>,
    /// Output directory for checkpoint.plc, metrics.jsonl, summary.json and hypotheses.
    #[arg(long, default_value = "runs/latest")]
    pub(super) out: PathBuf,
    /// Compute device.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub(super) device: DeviceChoice,
    /// Seed for initialisation, data order, augmentation and dropout.
    #[arg(long, default_value_t = 0)]
    pub(super) seed: u64,
    /// Threads each batch is split over, each with its own copy of the model (default: 2 on
    /// the CPU backend, 1 on wgpu). Part of the run's configuration: the same seed and shard
    /// count give the same weights on any machine.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub(super) shards: Option<u64>,
    #[command(flatten)]
    pub(super) corpus: CorpusChoice,
    /// Start from this trained dense model instead of random weights: a checkpoint of the same
    /// preset, or its weights alone (--weights-out). The run begins at step 0 with a fresh
    /// optimiser and fresh gates, and uses the model's feature statistics.
    #[arg(long)]
    pub(super) init_from: Option<PathBuf>,
    /// Also write the final model alone (config, feature statistics and weights; a third of a
    /// checkpoint's size) to this file, e.g. the lab's trained start or a teacher.
    #[arg(long)]
    pub(super) weights_out: Option<PathBuf>,
    /// Continue the run in this directory from its newest checkpoint, with the options it was
    /// started with (saved in DIR/run.json); takes no other options.
    #[arg(long)]
    pub(super) resume: Option<PathBuf>,
    /// Save a checkpoint every this many steps (and when stopped or finished).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) checkpoint_every: u64,
    /// Checkpoints kept in DIR/checkpoints (older ones are deleted).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) keep_checkpoints: u64,
    /// Replace an earlier run in --out: its checkpoints and results are deleted once
    /// everything this run needs has been checked. Without it, a directory holding a run is
    /// refused (--resume continues one).
    #[arg(long)]
    pub(super) overwrite: bool,
    /// Stop the run after this many steps in a row with a non-finite loss (each is skipped
    /// without touching the weights).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) max_bad_steps: u64,
    /// Peak learning rate.
    #[arg(long, value_parser = finite, default_value_t = OptimConfig::default().peak_lr)]
    pub(super) lr: f64,
    /// Steps of linear learning-rate warm-up (default: a tenth of the run, at least 1 and at
    /// most 200).
    #[arg(long)]
    pub(super) warmup_steps: Option<usize>,
    /// Evaluate on dev every this many steps (0: only at the end).
    #[arg(long)]
    pub(super) eval_every: Option<usize>,
    /// Padded frames per batch (at the default 10 ms frame shift, 100 frames are 1 s of audio).
    #[arg(long, conflicts_with = "max_batch_seconds")]
    pub(super) max_batch_frames: Option<usize>,
    /// Padded seconds of audio per batch (batch size × longest utterance).
    #[arg(long, value_parser = finite)]
    pub(super) max_batch_seconds: Option<f64>,
    /// Speed-perturbation factors, comma-separated; each training utterance plays at one of
    /// them (`1` turns perturbation off). Default 0.9,1,1.1.
    #[arg(long, value_parser = finite, value_delimiter = ',')]
    pub(super) speed_perturb: Vec<f64>,
    /// Train on this share of the training split's recorded utterances, every k-th in id order
    /// (so every speaker keeps about the same share), e.g. 0.25 for a model that is large for
    /// its data. Built-in corpus and train/dev/test trees only.
    #[arg(long, value_parser = finite, default_value_t = 1.0)]
    pub(super) train_share: f64,
    /// Feature-extraction threads for a streamed corpus (default: one per core).
    #[arg(long, value_parser = between::<1, 256>)]
    pub(super) workers: Option<usize>,
    /// LibriSpeech: dev utterances scored at each periodic evaluation (evenly spaced; the final
    /// evaluation scores every one).
    #[arg(long, value_parser = at_least_one, default_value_t = 400)]
    pub(super) dev_utterances: usize,
    /// LibriSpeech: training utterances whose features set the normalisation statistics.
    #[arg(long, value_parser = at_least_one, default_value_t = 2000)]
    pub(super) stats_utterances: usize,
    /// Fail on the first bad corpus item instead of skipping it.
    #[arg(long)]
    pub(super) strict: bool,
    /// Print the final result as JSON on stdout.
    #[arg(long)]
    pub(super) json: bool,
    /// Decoder for the final dev/test scores (periodic dev scores are greedy).
    #[command(flatten)]
    pub(super) decode: DecodeArgs,
    #[command(flatten)]
    pub(super) prune: PruneArgs,
}

/// How the run learns what to prune.
#[derive(Args)]
pub(super) struct PruneArgs {
    /// Pruning method: none (dense), adaptive-dropout (learned retention per unit), l0
    /// (hard-concrete masks driven to --target-sparsity) or magnitude (dense training, cut by
    /// weight norms to --budget at --prune-at, then fine-tuned).
    #[arg(long, default_value = "none", value_parser = parse_method)]
    pub(super) method: Method,
    /// Gated sites, comma-separated (default: all of ffn1.hidden, attn.query, attn.value, conv.input, ffn2.hidden).
    #[arg(long, value_delimiter = ',', value_parser = parse_site)]
    pub(super) sites: Vec<SiteKind>,
    /// Adaptive dropout: strength alpha of the pull towards the falling target.
    #[arg(long, value_parser = finite, default_value_t = AdaptiveDropoutConfig::default().strength)]
    pub(super) strength: f64,
    /// Adaptive dropout: Gumbel-sigmoid temperature.
    #[arg(long, value_parser = finite, default_value_t = AdaptiveDropoutConfig::default().temperature)]
    pub(super) temperature: f64,
    /// Adaptive dropout: fraction of the run over which the regulariser's target falls from
    /// --target-start to --target-end; it then stays there (1: the whole run).
    #[arg(long, value_parser = finite, default_value_t = AdaptiveDropoutConfig::default().ramp_fraction)]
    pub(super) target_ramp: f64,
    /// Adaptive dropout: fraction of the run after which the strength alpha falls linearly to 0
    /// at the end (1: never). Without the pull, the gates the loss needs rise towards 1
    /// before the cut.
    #[arg(long, value_parser = finite, default_value_t = AdaptiveDropoutConfig::default().strength_fade_from)]
    pub(super) strength_fade_from: f64,
    /// Adaptive dropout: the logit every unit starts at (3 is a retention of 0.95).
    #[arg(long, value_parser = finite, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().initial_logit)]
    pub(super) initial_logit: f64,
    /// Adaptive dropout: where the regulariser's target starts, as a logit. With
    /// --initial-logit and --target-end it sets the logit scale; doubling all three and halving
    /// --strength was measured in docs/results.md (session 11): it did not make the kept units'
    /// retention more decided.
    #[arg(long, value_parser = finite, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().target_start)]
    pub(super) target_start: f64,
    /// Adaptive dropout: where the regulariser's target ends (see --target-start).
    #[arg(long, value_parser = finite, allow_hyphen_values = true, default_value_t = AdaptiveDropoutConfig::default().target_end)]
    pub(super) target_end: f64,
    /// Adaptive dropout: the FFN hidden gates replace that layer's standard dropout, so kept
    /// units are not dropped twice.
    #[arg(long)]
    pub(super) replace_dropout: bool,
    /// Learning rate of the gate parameters (their own Adam).
    #[arg(long, value_parser = finite, default_value_t = GateConfig::default().lr)]
    pub(super) gate_lr: f64,
    /// Retention threshold for the final evaluation (units below it are pruned).
    #[arg(long, value_parser = finite, default_value_t = GateConfig::default().threshold)]
    pub(super) threshold: f64,
    /// Record every unit's retention every this many steps in trace.pltrace.
    #[arg(long, default_value_t = GateConfig::default().snapshot_every)]
    pub(super) snapshot_every: usize,
    /// L0: expected sparsity of the prunable parameters to drive the run to.
    #[arg(long, value_parser = finite, default_value_t = HardConcreteConfig::default().target_sparsity)]
    pub(super) target_sparsity: f64,
    /// Distil from this unpruned checkpoint (same preset): KL on CTC posteriors plus MSE between
    /// mapped block outputs.
    #[arg(long)]
    pub(super) teacher: Option<PathBuf>,
    /// Weight of the KL term (with --teacher).
    #[arg(long, value_parser = finite, default_value_t = DistillConfig::default().kl_weight)]
    pub(super) kl_weight: f64,
    /// Weight of the layer-wise MSE term (with --teacher).
    #[arg(long, value_parser = finite, default_value_t = DistillConfig::default().layer_weight)]
    pub(super) layer_weight: f64,
    /// Magnitude: once `--prune-at` of the run is done, cut by weight norms to this target,
    /// then fine-tune the smaller model for the rest: parameters (686000), a share kept (50%
    /// or 0.5) or a FLOPs speed-up (2x), the targets `prune --budget` and the lab take.
    #[arg(long)]
    pub(super) budget: Option<String>,
    /// Magnitude: fraction of the steps after which to prune.
    #[arg(long, value_parser = finite, default_value_t = GateConfig::default().magnitude_prune_at)]
    pub(super) prune_at: f64,
}

impl PruneArgs {
    pub(super) fn apply(&self, config: &mut GateConfig) -> Result<(), String> {
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
        if let Some(budget) = &self.budget {
            config.magnitude_budget = Some(parse_budget(budget)?);
        }
        config.l0.target_sparsity = self.target_sparsity;
        config.magnitude_prune_at = self.prune_at;
        Ok(())
    }
}

/// The options a run was started with, re-read from its `run.json` for `--resume`.
#[derive(Parser)]
pub(super) struct SavedCommand {
    #[command(flatten)]
    pub(super) args: TrainArgs,
}

/// The run's configuration from its options.
pub(super) fn config_from(args: &TrainArgs, on_cpu: bool) -> Result<TrainConfig, String> {
    let mut config = TrainConfig::for_preset(args.preset, CharTokenizer.vocab_size());
    config.seed = args.seed;
    // Two shards use both cores of a small machine for the CPU backend's small operations; a
    // GPU runs a whole batch at once.
    config.shards = args.shards.map_or(if on_cpu { 2 } else { 1 }, |n| n as usize);
    config.steps = args.steps.unwrap_or(config.steps);
    config.optim.peak_lr = args.lr;
    config.optim.warmup_steps = args
        .warmup_steps
        .unwrap_or_else(|| OptimConfig::default_warmup(config.steps));
    config.eval_every = args.eval_every.unwrap_or(config.eval_every);
    config.max_batch_frames = match (args.max_batch_frames, args.max_batch_seconds) {
        (Some(frames), _) => frames,
        (None, Some(seconds)) if seconds.is_finite() && seconds > 0.0 => {
            config.fbank.frames_in(seconds).round() as usize
        }
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
    args.prune.apply(&mut config.prune)?;
    if let Some(path) = &args.prune.teacher {
        config.distill = Some(DistillConfig {
            teacher: path.display().to_string(),
            kl_weight: args.prune.kl_weight,
            layer_weight: args.prune.layer_weight,
        });
    }
    config.validate().map_err(|e| e.to_string())?;
    check_magnitude_budget(&config)?;
    // The default warm-up fits any run; a warm-up asked for must too.
    if let Some(warmup) = args.warmup_steps.filter(|&w| w > config.steps) {
        return Err(format!(
            "--warmup-steps {warmup} is longer than the run's {} steps",
            config.steps
        ));
    }
    Ok(config)
}

/// A magnitude run cuts at `--prune-at` of the run; a target that cannot be met must fail
/// now, not hours in. Whether it can is the same for any weights (what a cut can remove is
/// fixed by the architecture), so a fresh model on the CPU answers it.
fn check_magnitude_budget(config: &TrainConfig) -> Result<(), String> {
    let Some((_, target)) = config.prune.magnitude_cut(config.steps) else {
        return Ok(());
    };
    if config.model.block_shapes.is_some() {
        return Ok(()); // resumed after its cut
    }
    let fresh = config.model.init(&Device::flex());
    let source =
        block_on(CutSource::new(fresh, config.model.clone(), None, &config.prune, true)).map_err(|e| e.to_string())?;
    // Planned, not cut: the plan refuses a budget the model's size or its gated units cannot
    // meet, and the surgery would only copy weights a fresh model does not need.
    source
        .budget_for(target)
        .and_then(|kept| source.plan(Selection::Budget(kept)))
        .map(drop)
        .map_err(|e| format!("--budget: cannot cut to {target}: {e}"))
}
