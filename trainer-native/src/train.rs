//! `prunelab train`: one training run from corpus to checkpoint, metrics and final WER.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::Module;
use prunelab_engine::data::{LoadOptions, LoadedSplit, Utterance};
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::{GateConfig, Method, SiteKind};
use prunelab_engine::model::{ConvSubsampling, Preset};
use prunelab_engine::prune::{ScoreKind, Selection, magnitude_scores, prune_model};
use prunelab_engine::store::encode_checkpoint;
use prunelab_engine::store::{Trace, decode_checkpoint, encode_trace};
use prunelab_engine::text::CharTokenizer;
use prunelab_engine::train::{
    DistillConfig, EvalReport, TrainConfig, TrainEvent, Trainer, ctc_min_frames, evaluate, evaluate_decoders,
};
use serde_json::json;

use crate::atomic::write_atomically;
use crate::corpus_source::{CorpusSource, default_pack_path};
use crate::decoding::DecodeArgs;
use crate::device::{DeviceChoice, pick};
use crate::pruning::budget_params;

#[derive(Args)]
pub struct TrainArgs {
    /// Model size: tiny (≈1.3 M params), small (≈10 M), medium (≈30 M).
    #[arg(long, default_value = "tiny", value_parser = parse_preset)]
    preset: Preset,
    /// Optimiser steps (default: the preset's run length, 2000).
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
    /// Corpus: a packed .plc file or a LibriSpeech-layout directory with train/dev/test.
    #[arg(long)]
    corpus: Option<PathBuf>,
    /// Peak learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Evaluate on dev every this many steps (0: only at the end).
    #[arg(long)]
    eval_every: Option<usize>,
    /// Padded frames per batch (100 frames = 1 s of audio).
    #[arg(long)]
    max_batch_frames: Option<usize>,
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
    #[arg(long)]
    strength: Option<f64>,
    /// Adaptive dropout: Gumbel-sigmoid temperature.
    #[arg(long)]
    temperature: Option<f64>,
    /// Learning rate of the gate parameters (their own Adam).
    #[arg(long)]
    gate_lr: Option<f64>,
    /// Retention threshold for the final evaluation (units below it are pruned).
    #[arg(long)]
    threshold: Option<f64>,
    /// Record every unit's retention every this many steps in trace.pltrace.
    #[arg(long)]
    snapshot_every: Option<usize>,
    /// L0: expected sparsity of the prunable parameters to drive the run to.
    #[arg(long)]
    target_sparsity: Option<f64>,
    /// Distil from this unpruned checkpoint (same preset): KL on CTC posteriors plus MSE between
    /// mapped block outputs.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Weight of the KL term (with --teacher).
    #[arg(long, default_value_t = 1.0)]
    kl_weight: f64,
    /// Weight of the layer-wise MSE term (with --teacher).
    #[arg(long, default_value_t = 1.0)]
    layer_weight: f64,
    /// Magnitude: prune to this many parameters (or this fraction of the model, e.g. 0.5)
    /// once `--prune-at` of the run is done, then fine-tune the smaller model for the rest.
    #[arg(long)]
    budget: Option<f64>,
    /// Magnitude: fraction of the steps after which to prune.
    #[arg(long)]
    prune_at: Option<f64>,
}

impl PruneArgs {
    fn apply(&self, config: &mut GateConfig) {
        config.method = self.method;
        if !self.sites.is_empty() {
            config.sites = self.sites.clone();
        }
        let ad = &mut config.adaptive_dropout;
        ad.strength = self.strength.unwrap_or(ad.strength);
        ad.temperature = self.temperature.unwrap_or(ad.temperature);
        config.lr = self.gate_lr.unwrap_or(config.lr);
        config.threshold = self.threshold.unwrap_or(config.threshold);
        config.snapshot_every = self.snapshot_every.unwrap_or(config.snapshot_every);
        config.magnitude_budget = self.budget.or(config.magnitude_budget);
        config.l0.target_sparsity = self.target_sparsity.unwrap_or(config.l0.target_sparsity);
        config.magnitude_prune_at = self.prune_at.unwrap_or(config.magnitude_prune_at);
    }
}

/// The magnitude method's one cut: at its step, prune the dense model to the budget by weight
/// norms and carry on training the smaller model. Returns a line for the log when it cut.
fn magnitude_cut(trainer: &mut Trainer) -> Result<Option<String>, String> {
    let c = &trainer.config;
    let Some(budget) = c.prune.magnitude_budget else {
        return Ok(None);
    };
    let cut_step = (c.prune.magnitude_prune_at * c.steps as f64).round() as usize;
    if c.prune.method != Method::Magnitude || trainer.step() != cut_step || c.model.block_shapes.is_some() {
        return Ok(None);
    }
    let model = trainer.inference_model();
    let dense = model.num_params();
    let budget = budget_params(budget, dense);
    let scores = magnitude_scores(&model, &c.prune.sites);
    let pruned = prune_model(
        &model,
        &c.model,
        &scores,
        &[],
        ScoreKind::Magnitude,
        Selection::Budget(budget),
    )
    .map_err(|e| format!("magnitude pruning at step {cut_step}: {e}"))?;
    trainer.replace_model(&pruned.model)?;
    Ok(Some(format!(
        "step {cut_step:>6}: pruned by magnitude to {} parameters (from {dense}); fine-tuning",
        pruned.params.total()
    )))
}

fn parse_method(name: &str) -> Result<Method, String> {
    Method::parse(name)
        .ok_or_else(|| format!("unknown method {name:?}; choose none, adaptive-dropout, l0 or magnitude"))
}

pub fn parse_site(name: &str) -> Result<SiteKind, String> {
    SiteKind::parse(name).ok_or_else(|| {
        format!("unknown site {name:?}; choose from ffn1.hidden, attn.query, attn.value, conv.input, ffn2.hidden")
    })
}

pub fn parse_preset(name: &str) -> Result<Preset, String> {
    Preset::parse(name).ok_or_else(|| format!("unknown preset {name:?}; choose tiny, small or medium"))
}

pub fn run(args: TrainArgs) -> Result<(), String> {
    let mut config = TrainConfig::for_preset(args.preset, CharTokenizer.vocab_size());
    config.seed = args.seed;
    config.steps = args.steps.unwrap_or(config.steps);
    config.optim.peak_lr = args.lr.unwrap_or(config.optim.peak_lr);
    config.eval_every = args.eval_every.unwrap_or(config.eval_every);
    config.max_batch_frames = args.max_batch_frames.unwrap_or(config.max_batch_frames);
    args.prune.apply(&mut config.prune);
    let teacher = match &args.prune.teacher {
        Some(path) => {
            let name = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| format!("{name}: cannot read teacher: {e}"))?;
            let state = decode_checkpoint(&bytes, &name).map_err(|e| e.to_string())?;
            config.distill = Some(DistillConfig {
                teacher: name,
                kl_weight: args.prune.kl_weight,
                layer_weight: args.prune.layer_weight,
            });
            Some(state)
        }
        None => None,
    };
    config.validate()?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;

    let (device, device_label) = pick(args.device)?;
    let corpus = CorpusSource::open(&args.corpus.clone().unwrap_or_else(default_pack_path))?;
    let decoder = args.decode.build(&corpus)?;
    eprintln!("corpus {} · device {device_label}", corpus.describe());
    let plain = LoadOptions::plain(&config.fbank, args.strict);
    let perturbed = LoadOptions {
        speeds: config.speed_perturbation.clone(),
        ..plain.clone()
    };
    let mut train = corpus.load("train", &perturbed)?;
    let dev = corpus.load("dev", &plain)?;
    let test = corpus.load("test", &plain)?;
    drop_infeasible(&mut train, args.strict)?;
    let stats = FeatureStats::from_features(
        train.utterances.iter().map(|u| u.feats.as_slice()),
        config.fbank.num_bins,
    );
    eprintln!(
        "train {} utts ({:.0} s) · dev {} · test {} · preset {} · {} steps",
        train.utterances.len(),
        train.total_seconds(),
        dev.utterances.len(),
        test.utterances.len(),
        config.preset.name(),
        config.steps
    );

    if let Some(teacher) = &teacher
        && teacher.stats != stats
    {
        return Err("the teacher was trained with other feature statistics (another corpus?)".into());
    }
    let mut trainer = Trainer::new(config, stats, &device);
    if let Some(teacher) = &teacher {
        let name = trainer
            .config
            .distill
            .as_ref()
            .map_or("", |d| d.teacher.as_str())
            .to_string();
        trainer.attach_teacher(teacher).map_err(|e| format!("{name}: {e}"))?;
    }
    eprintln!("model parameters: {}", trainer.inference_model().num_params());
    let mut metrics = open_metrics(&args.out)?;
    let started = Instant::now();
    train_loop(
        &mut trainer,
        &train.utterances,
        &dev.utterances,
        &mut metrics,
        &args.out,
    )?;
    let seconds = started.elapsed().as_secs_f64();

    let model = trainer.inference_model();
    let masks = trainer.inference_masks(trainer.config.prune.threshold);
    let frames = trainer.config.max_batch_frames;
    let greedy = Decoder::Greedy;
    let [dev_report, dev_greedy] = two_reports(evaluate_decoders(
        &model,
        &masks,
        &dev.utterances,
        &trainer.stats,
        frames,
        &[&decoder, &greedy],
    ));
    let [test_report, test_greedy] = two_reports(evaluate_decoders(
        &model,
        &masks,
        &test.utterances,
        &trainer.stats,
        frames,
        &[&decoder, &greedy],
    ));
    save_checkpoint(&trainer, &args.out)?;
    write_hypotheses(&args.out, "dev", &dev_report)?;
    write_hypotheses(&args.out, "test", &test_report)?;
    let summary = json!({
        "preset": trainer.config.preset.name(),
        "device": device_label,
        "steps": trainer.step(),
        "skipped_steps": trainer.skipped_steps(),
        "train_seconds": seconds,
        "parameters": model.num_params(),
        "skipped_items": train.skipped.len() + dev.skipped.len() + test.skipped.len(),
        "decoder": decoder.describe(),
        "dev": { "wer": dev_report.wer(), "cer": dev_report.cer(), "ser": dev_report.ser(), "words": dev_report.words },
        "test": { "wer": test_report.wer(), "cer": test_report.cer(), "ser": test_report.ser(), "words": test_report.words },
        "greedy": {
            "dev": { "wer": dev_greedy.wer(), "cer": dev_greedy.cer() },
            "test": { "wer": test_greedy.wer(), "cer": test_greedy.cer() },
        },
    });
    write_atomically(
        &args.out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default().as_bytes(),
    )?;
    if args.json {
        println!("{summary}");
    } else {
        println!("trained {} steps in {:.0} s on {device_label}", trainer.step(), seconds);
        println!("decoder: {}", decoder.describe());
        println!("dev  WER {:6.2}%  CER {:6.2}%", dev_report.wer(), dev_report.cer());
        println!(
            "test WER {:6.2}%  CER {:6.2}%  (held-out voices)",
            test_report.wer(),
            test_report.cer()
        );
        println!(
            "greedy: dev WER {:.2}%, test WER {:.2}%",
            dev_greedy.wer(),
            test_greedy.wer()
        );
        println!("checkpoint: {}", args.out.join("checkpoint.plc").display());
    }
    Ok(())
}

/// The loop: step, log, evaluate and checkpoint at intervals; snapshot gate retention into the trace.
fn train_loop(
    trainer: &mut Trainer,
    train: &[Utterance],
    dev: &[Utterance],
    metrics: &mut impl Write,
    out: &std::path::Path,
) -> Result<(), String> {
    let bar = ProgressBar::new(trainer.config.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} · {msg} · {per_sec} · ETA {eta}")
            .map_err(|e| e.to_string())?,
    );
    bar.set_position(trainer.step() as u64);
    let mut trace = new_trace(trainer);
    snapshot(trainer, trace.as_mut(), out)?;
    let mut smoothed_loss: Option<f32> = None;
    while !trainer.is_finished() {
        let event = trainer.train_step(train);
        if let TrainEvent::Step { loss, penalty, .. } = event {
            smoothed_loss = Some(smoothed_loss.map_or(loss, |s| 0.95 * s + 0.05 * loss));
            let penalty = if trace.is_some() {
                format!(" · penalty {penalty:.3}")
            } else {
                String::new()
            };
            bar.set_message(format!("loss {:.3}{penalty}", smoothed_loss.unwrap_or(loss)));
        }
        log_event(metrics, trace.as_mut(), &event)?;
        bar.inc(1);
        if let Some(line) = magnitude_cut(trainer)? {
            say(&bar, line);
        }
        let every = trainer.config.prune.snapshot_every.max(1);
        if trainer.step() % every == 0 || trainer.is_finished() {
            snapshot(trainer, trace.as_mut(), out)?;
        }
        let every = trainer.config.eval_every;
        if every > 0 && trainer.step() % every == 0 && !trainer.is_finished() {
            let report = evaluate(
                &trainer.inference_model(),
                &trainer.inference_masks(trainer.config.prune.threshold),
                dev,
                &trainer.stats,
                trainer.config.max_batch_frames,
                &Decoder::Greedy,
            );
            let eval = TrainEvent::Eval {
                step: trainer.step(),
                split: "dev".into(),
                wer: report.wer(),
                cer: report.cer(),
                utterances: report.utterances.len(),
            };
            say(
                &bar,
                format!(
                    "step {:>6}: dev WER {:.2}%  CER {:.2}%{}",
                    trainer.step(),
                    report.wer(),
                    report.cer(),
                    kept_summary(trainer)
                ),
            );
            log_event(metrics, trace.as_mut(), &eval)?;
            save_checkpoint(trainer, out)?;
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// A progress line above the bar, or on stderr when there is no terminal to draw the bar on
/// (indicatif then hides the bar and everything it would print).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An empty trace for a gated run (ungated runs have nothing to trace).
fn new_trace(trainer: &Trainer) -> Option<Trace> {
    let retention = trainer.retention()?;
    let c = &trainer.config;
    let description = format!(
        "{} · {} · seed {} · {} steps",
        c.prune.method.name(),
        c.preset.name(),
        c.seed,
        c.steps
    );
    Some(Trace::shaped_like(description, &retention))
}

/// Records the current retention and rewrites the trace file (atomically).
fn snapshot(trainer: &Trainer, trace: Option<&mut Trace>, out: &std::path::Path) -> Result<(), String> {
    let (Some(trace), Some(retention)) = (trace, trainer.retention()) else {
        return Ok(());
    };
    if trace.steps.last() == Some(&trainer.step()) {
        return Ok(());
    }
    trace.record(trainer.step(), &retention);
    write_atomically(&out.join("trace.pltrace"), &encode_trace(trace))
}

/// " · kept 812/1056 units" for a gated run at its threshold, "" otherwise.
fn kept_summary(trainer: &Trainer) -> String {
    let Some(retention) = trainer.retention() else {
        return String::new();
    };
    let threshold = trainer.config.prune.threshold as f32;
    let all: Vec<f32> = retention
        .iter()
        .flat_map(|s| s.iter().flatten().flatten().copied())
        .collect();
    let kept = all.iter().filter(|&&p| p >= threshold).count();
    format!(" · kept {kept}/{} units", all.len())
}

fn two_reports(reports: Vec<EvalReport>) -> [EvalReport; 2] {
    reports
        .try_into()
        .unwrap_or_else(|_| unreachable!("one report per decoder"))
}

/// Drops utterances too short for their transcript under 4× subsampling (CTC would be infinite).
fn drop_infeasible(split: &mut LoadedSplit, strict: bool) -> Result<(), String> {
    let before = split.utterances.len();
    let feasible = |u: &Utterance| ConvSubsampling::output_len(u.frames) >= ctc_min_frames(&u.tokens);
    if strict && let Some(u) = split.utterances.iter().find(|u| !feasible(u)) {
        return Err(format!("{}: audio too short for its transcript", u.id));
    }
    split.utterances.retain(feasible);
    let dropped = before - split.utterances.len();
    if dropped > 0 {
        eprintln!("warning: dropped {dropped} training utterance(s) too short for their transcripts");
    }
    Ok(())
}

fn open_metrics(out: &std::path::Path) -> Result<std::io::LineWriter<std::fs::File>, String> {
    let path = out.join("metrics.jsonl");
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
    Ok(std::io::LineWriter::new(file))
}

fn log_event(metrics: &mut impl Write, trace: Option<&mut Trace>, event: &TrainEvent) -> Result<(), String> {
    if let Some(trace) = trace {
        trace.events.push(event.clone());
    }
    let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
    writeln!(metrics, "{line}").map_err(|e| format!("metrics.jsonl: cannot write: {e}"))
}

fn save_checkpoint(trainer: &Trainer, out: &std::path::Path) -> Result<(), String> {
    let state = trainer.state()?;
    write_atomically(&out.join("checkpoint.plc"), &encode_checkpoint(&state))
}

fn write_hypotheses(out: &std::path::Path, split: &str, report: &EvalReport) -> Result<(), String> {
    let body: String = report
        .utterances
        .iter()
        .map(|u| format!("{} {}\n", u.id, u.hypothesis))
        .collect();
    write_atomically(&out.join(format!("hyp-{split}.txt")), body.as_bytes())
}
