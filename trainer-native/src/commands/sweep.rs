//! `prunelab sweep`: prune a checkpoint at a grid of thresholds (or budgets) and measure every
//! point: parameters, FLOPs, real-time factor, dev and test WER, kept units per site kind.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::data::{LoadOptions, Utterance};
use prunelab_engine::decode::Decoder;
use prunelab_engine::infer::{EvalReport, ModelScore};
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{Pruned, ScoreKind, Selection, param_count, prunable_sparsity};
use prunelab_engine::readback::block_on;
use serde_json::{Value, json};

use crate::data::corpus_source::CorpusChoice;
use crate::models::prunable::{Prunable, open_prunable, parse_budget};
use crate::progress;
use prunelab_engine::infer::DevTimer;

use crate::atomic::{refuse_overwriting_inputs, write_atomically};
use crate::models::timing::{paired, real_time_factor};
use crate::options::decoding::DecodeArgs;
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::{between, finite};
use crate::run::dir::refuse_replacing_a_runs_file;

#[derive(Args)]
pub struct SweepArgs {
    /// Checkpoint written by `prunelab train` (only read, never written).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Retention thresholds to try (gated runs), separated by commas or spaces.
    #[arg(long, value_parser = finite, value_delimiter = ',', num_args = 1.., default_values_t = vec![0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])]
    thresholds: Vec<f64>,
    /// Targets to cut to instead: parameters (686000), shares kept (50% or 0.5) or FLOPs
    /// speed-ups (2x), as `prune --budget` takes them; separated by commas or spaces.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    budgets: Vec<String>,
    /// Rank units by weight norms even for a gated run (the magnitude baseline).
    #[arg(long)]
    magnitude: bool,
    #[command(flatten)]
    corpus: CorpusChoice,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    /// Timed passes over the dev set per point: the real-time factor is their median, and the
    /// speed-up the median ratio of back-to-back dense/pruned pairs.
    #[arg(long, value_parser = between::<1, 1000>, default_value_t = 3)]
    repeats: usize,
    /// Also write the points as JSON to this file (never the checkpoint itself, nor a file of a
    /// training run without --overwrite).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace --out even when it is a file of a training run (its summary, metrics…).
    #[arg(long)]
    overwrite: bool,
    /// Print the points as JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    decode: DecodeArgs,
}

pub fn run(args: SweepArgs) -> Result<(), String> {
    if let Some(out) = &args.out {
        refuse_overwriting_inputs("--out", out, &[&args.checkpoint])?;
        refuse_replacing_a_runs_file("--out", out, args.overwrite)?;
    }
    let (device, device_label) = pick(args.device)?;
    let opened = open_prunable(&args.checkpoint, &device, args.magnitude)?;
    let source = &opened.source;
    let corpus = args.corpus.open()?;
    let options = LoadOptions::plain(&opened.state.config.fbank, false);
    let dev = corpus.load("dev", &options)?.utterances;
    let test = corpus.load("test", &options)?.utterances;
    let decoder = args.decode.build(&corpus)?;
    let dense = param_count(&opened.state.config.model, &source.model.block_shapes()).total();
    let selections = selections(&args, &opened)?;

    let timer = DevTimer::new(&dev, &opened.state.stats, opened.state.config.max_batch_frames);
    // Speed-ups are against the dense architecture: the checkpoint's own model, gates off.
    let dense_rtf = real_time_factor(&timer, &source.model, args.repeats)?;
    let mut points = Vec::new();
    let reference_row = !source.own_rule_cuts();
    let bar = progress::counter(selections.len() + usize::from(reference_row), "scoring cuts");
    // The uncut reference row: a gated run with its retention folded in and nothing cut
    // (threshold 0), or the dense model itself. A method whose own rule always removes units
    // (L0: closed gates, and whole modules) has none: its threshold 0 is a cut like the others.
    if reference_row {
        let unpruned = match source.kind {
            ScoreKind::Retention => opened.cut(Selection::Threshold(0.0))?.model,
            ScoreKind::Magnitude => source.model.clone(),
        };
        points.push(measure(
            &opened,
            Scored::AsItIs(&unpruned),
            &dev,
            &test,
            &decoder,
            dense_rtf,
            1.0,
        )?);
        bar.inc(1);
    }
    for selection in selections {
        let pruned = opened.cut(selection)?;
        let timing = paired(&timer, &source.model, &pruned.model, args.repeats)?;
        let (rtf, speedup) = (timing.pruned_real_time_factor(), timing.speedup);
        let mut point = measure(&opened, Scored::Cut(&pruned), &dev, &test, &decoder, rtf, speedup)?;
        point["selection"] = json!(selection);
        points.push(point);
        if !args.json {
            bar.suspend(|| tell!("{}", row(points.last().unwrap_or(&Value::Null))));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = json!({
        "checkpoint": opened.name, "method": source.method.name(), "device": device_label,
        "decoder": decoder.describe(), "dense_params": dense, "dense_rtf": dense_rtf, "points": points,
    });
    if let Some(out) = &args.out {
        write_atomically(
            out,
            serde_json::to_string_pretty(&summary)
                .map_err(|e| e.to_string())?
                .as_bytes(),
        )?;
    }
    if args.json {
        say!("{summary}");
    } else {
        say!(
            "{} ({}) · {device_label} · {}",
            opened.name,
            source.method.name(),
            decoder.describe()
        );
        say!("dense model: {dense} parameters, real-time factor {dense_rtf:.5} (the speed-ups' reference)");
        say!("{}", header());
        for point in &points {
            say!("{}", row(point));
        }
    }
    Ok(())
}

fn selections(args: &SweepArgs, source: &Prunable) -> Result<Vec<Selection>, String> {
    if !args.budgets.is_empty() {
        return args
            .budgets
            .iter()
            .map(|b| source.budget_for(parse_budget(b)?).map(Selection::Budget))
            .collect();
    }
    if source.source.kind != ScoreKind::Retention {
        return Err("this checkpoint has no learned gates: sweep it with --budgets (e.g. 0.9,0.7,0.5)".into());
    }
    if let Some(bad) = args.thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
        return Err(format!("threshold {bad} is outside [0, 1]"));
    }
    Ok(args.thresholds.iter().map(|&t| Selection::Threshold(t)).collect())
}

/// The model a point scores: as it is (the reference row), or a cut.
#[derive(Clone, Copy)]
enum Scored<'a> {
    AsItIs(&'a Conformer),
    Cut(&'a Pruned),
}

/// One point: cost, speed and accuracy of `scored`, through the engine's scorer.
fn measure(
    source: &Prunable,
    scored: Scored<'_>,
    dev: &[Utterance],
    test: &[Utterance],
    decoder: &Decoder,
    rtf: f64,
    speedup: f64,
) -> Result<Value, String> {
    let config = &source.state.config;
    let scorer = config.scorer(&source.state.stats);
    let decoders = [decoder, &Decoder::Greedy];
    let score = |split: &[Utterance]| -> Result<(ModelScore, [EvalReport; 2]), String> {
        let mut scored = match scored {
            Scored::AsItIs(model) => block_on(scorer.score_model(model, split, &decoders)),
            Scored::Cut(pruned) => block_on(scorer.score_cut(pruned, split, &decoders)),
        }
        .map_err(|e| e.to_string())?;
        let reports = std::mem::take(&mut scored.reports)
            .try_into()
            .unwrap_or_else(|_| unreachable!("one report per decoder"));
        Ok((scored, reports))
    };
    let (scored_dev, [dev_report, dev_greedy]) = score(dev)?;
    let (_, [test_report, test_greedy]) = score(test)?;
    let sites: Vec<Value> = scored_dev
        .kept
        .iter()
        .map(|(kind, kept, total)| json!({"site": kind.name(), "kept": kept, "total": total}))
        .collect();
    let sparsity = match scored {
        Scored::Cut(pruned) => prunable_sparsity(&config.model, &pruned.keep),
        Scored::AsItIs(_) => 0.0,
    };
    let params = scored_dev.params;
    Ok(json!({
        "selection": Value::Null,
        "params": params.total(), "encoder_params": params.encoder(), "prunable_sparsity": sparsity,
        "gflops_per_second": scored_dev.flops_per_second / 1e9,
        "rtf": rtf, "speedup": speedup,
        "dev_wer": dev_report.wer(), "test_wer": test_report.wer(),
        "dev_wer_greedy": dev_greedy.wer(), "test_wer_greedy": test_greedy.wer(),
        "sites": sites,
    }))
}

fn header() -> String {
    format!(
        "{:<16} {:>9} {:>7} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8} {:>8}  kept per site (ffn1 q v conv ffn2)",
        "selection", "params", "cut", "GFLOP/s", "RTF", "speed", "dev WER", "test WER", "dev grd", "test grd"
    )
}

fn row(point: &Value) -> String {
    let selection = match point["selection"].as_object() {
        None => "unpruned".to_string(),
        Some(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" "),
    };
    let kept: Vec<String> = point["sites"]
        .as_array()
        .map(|a| a.iter().map(|s| format!("{}/{}", s["kept"], s["total"])).collect())
        .unwrap_or_default();
    format!(
        "{:<16} {:>9} {:>6.1}% {:>8.4} {:>8.5} {:>6.2}× {:>7.2}% {:>7.2}% {:>7.2}% {:>7.2}%  {}",
        selection,
        point["params"],
        100.0 * point["prunable_sparsity"].as_f64().unwrap_or(f64::NAN),
        point["gflops_per_second"].as_f64().unwrap_or(f64::NAN),
        point["rtf"].as_f64().unwrap_or(f64::NAN),
        point["speedup"].as_f64().unwrap_or(f64::NAN),
        point["dev_wer"].as_f64().unwrap_or(f64::NAN),
        point["test_wer"].as_f64().unwrap_or(f64::NAN),
        point["dev_wer_greedy"].as_f64().unwrap_or(f64::NAN),
        point["test_wer_greedy"].as_f64().unwrap_or(f64::NAN),
        kept.join(" ")
    )
}
