//! `prunelab compare`: trained runs of several methods and seeds scored side by side on the
//! same utterances, with paired-bootstrap 95 % intervals, written as Markdown, JSON and plots.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::ProgressBar;
use prunelab_engine::data::{LoadOptions, Utterance};
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::Method;
use prunelab_engine::infer::{ModelScore, Scorer};
use prunelab_engine::model::Conformer;
use prunelab_engine::prune::{CutTarget, ScoreKind, Selection};
use prunelab_engine::readback::block_on;
use prunelab_engine::stats::{UtteranceErrors, corpus_wer};
use serde_json::json;

use crate::data::corpus_source::CorpusChoice;
use crate::models::prunable::{Prunable, open_prunable, parse_budget};
use crate::progress;
use prunelab_engine::infer::DevTimer;

use crate::atomic::write_atomically;
use crate::models::timing::paired;
use crate::options::bootstrap::BootstrapArgs;
use crate::options::decoding::DecodeArgs;
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::between;
use crate::reports::comparison::{Comparison, RunFacts, RunScores, reference_index};
use crate::reports::plots::{
    MarkedPoint, RetentionHistograms, Series, TrainingCurves, WerAgainstParams, display_method, svg_and_png,
};
use crate::reports::run_history::{RunHistory, read_history};

#[derive(Args)]
pub struct CompareArgs {
    /// Run directories written by `prunelab train` (checkpoint.plc inside; metrics.jsonl, when
    /// there, gives the training curves). At least one must be dense (`--method none`): every
    /// run is compared with the dense run of its seed, or the first dense run.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Directory for report.md, report.json and the plots (created; earlier files replaced).
    #[arg(long, default_value = "compare")]
    out: PathBuf,
    #[command(flatten)]
    corpus: CorpusChoice,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Cpu)]
    device: DeviceChoice,
    #[command(flatten)]
    bootstrap: BootstrapArgs,
    /// Timed back-to-back pairs of passes (dense reference, run) per run; the speed-up is the
    /// median of their ratios.
    #[arg(long, value_parser = between::<1, 1000>, default_value_t = 3)]
    repeats: usize,
    /// Dev utterances the timed passes run over (the first N).
    #[arg(long, value_parser = between::<1, 100_000>, default_value_t = 96)]
    timing_utterances: usize,
    /// Further cuts of each gated run, at other thresholds or budgets, scored on dev for the
    /// WER-against-parameters plot (0: each run's own cut only).
    #[arg(long, value_parser = between::<0, 1000>, default_value_t = 4)]
    curve_points: usize,
    /// Cut every gated run to this target (parameters like 686000, the share of its dense
    /// model kept like 50% or 0.5, or a FLOPs speed-up like 2x) instead of its own rule, for a comparison at equal size: adaptive
    /// dropout's threshold may keep far more or far fewer units than another method's budget.
    /// L0's closed gates stay closed, so an L0 run whose own rule keeps less is taken as it is.
    /// Runs cut during training (magnitude) are taken as they are.
    #[arg(long)]
    budget: Option<String>,
    /// Print the report as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    decode: DecodeArgs,
}

/// A run opened and scored: the figures, and what the plots need.
struct ScoredRun {
    scores: RunScores,
    model: Conformer,
    prunable: Prunable,
    /// Extra cuts: `(parameters, dev WER)`.
    curve: Vec<(f64, f64)>,
    history: RunHistory,
}

/// The dev and test utterances every run is scored on.
struct EvalData {
    dev: Vec<Utterance>,
    test: Vec<Utterance>,
    decoder: Decoder,
}

pub fn run(args: CompareArgs) -> Result<(), String> {
    if args.repeats == 0 || args.timing_utterances == 0 {
        return Err("--repeats and --timing-utterances must be at least 1".into());
    }
    // Refused before any run is read.
    let target = args.budget.as_deref().map(parse_budget).transpose()?;
    let (device, device_label) = pick(args.device)?;
    let opened: Vec<(String, Prunable, RunHistory)> = args
        .runs
        .iter()
        .map(|path| open_run(path, &device))
        .collect::<Result<_, _>>()?;
    let fbank = &opened[0].1.state.config.fbank;
    if let Some((name, ..)) = opened.iter().find(|(_, p, _)| &p.state.config.fbank != fbank) {
        return Err(format!(
            "{name}: its features differ from {}'s; compare runs of one feature setup",
            opened[0].0
        ));
    }
    let corpus = args.corpus.open()?;
    let options = LoadOptions::plain(fbank, false);
    let data = EvalData {
        dev: corpus.load("dev", &options)?.utterances,
        test: corpus.load("test", &options)?.utterances,
        decoder: args.decode.build(&corpus)?,
    };
    let mut runs = Vec::new();
    let bar = progress::counter(opened.len(), "scoring runs");
    for (name, prunable, history) in opened {
        bar.set_message(format!("scoring {name}"));
        let cut = own_or_budget_cut(&prunable, target)?;
        runs.push(score_run(name, prunable, cut, history, &data, args.curve_points, &bar)?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    measure_speedups(&mut runs, &data.dev, &args)?;

    let scores: Vec<&RunScores> = runs.iter().map(|r| &r.scores).collect();
    let dev_draws = args.bootstrap.draw(data.dev.len())?;
    let test_draws = args.bootstrap.draw(data.test.len())?;
    let comparison = Comparison::build(&scores, &dev_draws, &test_draws)?;

    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let plots = write_plots(&args.out, &runs, &comparison)?;
    let words = |split: &[UtteranceErrors]| split.iter().map(|u| u.words).sum::<usize>();
    let (dev_words, test_words) = (words(&scores[0].dev), words(&scores[0].test));
    let timed_utterances = args.timing_utterances.min(data.dev.len());
    let report = json!({
        "corpus": corpus.describe(), "decoder": data.decoder.describe(), "device": device_label,
        "dev": {"utterances": data.dev.len(), "words": dev_words},
        "test": {"utterances": data.test.len(), "words": test_words},
        "budget": args.budget, "bootstrap": dev_draws.config(), "timing": {"repeats": args.repeats, "utterances": timed_utterances},
        "runs": comparison.runs, "methods": comparison.methods,
        "curves": runs.iter().map(|r| json!({"run": r.scores.run.name, "points": r.curve})).collect::<Vec<_>>(),
        "plots": plots,
    });
    let report_json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    write_atomically(&args.out.join("report.json"), report_json.as_bytes())?;
    let context = format!(
        "Dev: {} utterances, {} words; test: {} utterances, {} words ({}). Decoder: {}. \
         95 % intervals from {} paired bootstrap resamples over utterances (seed {}); P(worse) is the share of \
         resamples in which the run's WER is above its dense reference's. Speed-ups: median of {} paired timed \
         passes over {} dev utterances on {device_label}.\n\n",
        data.dev.len(),
        dev_words,
        data.test.len(),
        test_words,
        corpus.describe(),
        data.decoder.describe(),
        dev_draws.config().resamples,
        dev_draws.config().seed,
        args.repeats,
        timed_utterances,
    );
    let images: String = plots
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .filter_map(|p| p.file_name())
        .map(|f| format!("![{0}]({0})\n", f.to_string_lossy()))
        .collect();
    let markdown = format!("{context}{}\n{images}", comparison.markdown());
    write_atomically(&args.out.join("report.md"), markdown.as_bytes())?;
    if args.json {
        say!("{report_json}");
    } else {
        say!("{markdown}");
        tell!("report and plots in {}", args.out.display());
    }
    Ok(())
}

/// Opens a run directory (or a checkpoint file) for scoring.
fn open_run(
    path: &Path,
    device: &prunelab_engine::burn::prelude::Device,
) -> Result<(String, Prunable, RunHistory), String> {
    let (dir, checkpoint) = if path.is_dir() {
        (path.to_path_buf(), path.join("checkpoint.plc"))
    } else {
        (path.parent().map(PathBuf::from).unwrap_or_default(), path.to_path_buf())
    };
    let name = dir.file_name().map_or_else(
        || checkpoint.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let prunable = open_prunable(&checkpoint, device, false)?;
    let history = read_history(&dir.join("metrics.jsonl"))?;
    Ok((name, prunable, history))
}

/// The model a run is scored as, and how it was cut: its own rule (the run's threshold, L0's
/// closed gates), or `target` when given; a run cut during training, or one with no learned
/// scores, as it is.
fn own_or_budget_cut(prunable: &Prunable, target: Option<CutTarget>) -> Result<(Conformer, String), String> {
    let source = &prunable.source;
    let method = prunable.state.config.prune.method;
    let gated = source.kind == ScoreKind::Retention;
    Ok(match (source.default_selection(), target) {
        _ if source.already_cut() => (source.model.clone(), "cut during training".to_string()),
        (Some(_), Some(target)) if gated => {
            let kept = prunable.budget_for(target)?;
            let own = source
                .own_rule_within(kept)
                .map_err(|e| format!("{}: {e}", prunable.name))?;
            let label = if own {
                format!("own rule (closed gates), within budget {kept}")
            } else {
                format!("budget {kept}")
            };
            (prunable.cut(Selection::Budget(kept))?.model, label)
        }
        (Some(selection), None) if gated => {
            let label = match (method, selection) {
                (Method::L0, _) => "own rule (closed gates)".to_string(),
                (_, Selection::Threshold(t)) => format!("threshold {t}"),
                (_, Selection::Budget(b)) => format!("budget {b}"),
            };
            (prunable.cut(selection)?.model, label)
        }
        _ => (source.model.clone(), "uncut".to_string()),
    })
}

/// Scores a run's `cut` (see [`own_or_budget_cut`]) on dev and test, and its extra cuts on dev.
fn score_run(
    name: String,
    prunable: Prunable,
    (model, cut): (Conformer, String),
    history: RunHistory,
    data: &EvalData,
    curve_points: usize,
    bar: &ProgressBar,
) -> Result<ScoredRun, String> {
    let method = prunable.state.config.prune.method;
    let source = &prunable.source;
    let config = &prunable.state.config;
    let scorer = config.scorer(&prunable.state.stats);
    let score = |model: &Conformer, split: &[Utterance]| {
        errors_per_utterance(&scorer, model, split, &prunable.name, &data.decoder)
    };
    let (costs, dev) = score(&model, &data.dev)?;
    let (_, test) = score(&model, &data.test)?;
    let mut curve = Vec::new();
    if source.kind == ScoreKind::Retention && !source.already_cut() && curve_points > 0 {
        for at in spread(&source.sweep_values(), curve_points) {
            let cut = source.cut_at(at).map_err(|e| format!("{name}: {e}"))?;
            let (_, errors) = score(&cut.model, &data.dev)?;
            curve.push((cut.params.total() as f64, corpus_wer(&errors)));
        }
    }
    let params = costs.params;
    let run = RunFacts {
        name,
        method: method.name().to_string(),
        seed: config.seed,
        steps: prunable.state.step,
        cut,
        params: params.total(),
        encoder_params: params.encoder(),
        gflops_per_second: costs.flops_per_second / 1e9,
        speedup: 1.0,
    };
    bar.suspend(|| {
        tell!(
            "{} ({}, seed {}, {} steps, {}): {} parameters, dev WER {:.2} %, test WER {:.2} %",
            run.name,
            run.method,
            run.seed,
            run.steps,
            run.cut,
            run.params,
            corpus_wer(&dev),
            corpus_wer(&test)
        )
    });
    let scores = RunScores { run, dev, test };
    Ok(ScoredRun {
        scores,
        model,
        prunable,
        curve,
        history,
    })
}

/// `model` scored on `split` through the engine's scorer: its costs, and its word errors on
/// each utterance of `split`, in the order of `split`.
fn errors_per_utterance(
    scorer: &Scorer<'_>,
    model: &Conformer,
    split: &[Utterance],
    name: &str,
    decoder: &Decoder,
) -> Result<(ModelScore, Vec<UtteranceErrors>), String> {
    let mut scored = block_on(scorer.score_model(model, split, &[decoder])).map_err(|e| format!("{name}: {e}"))?;
    let report = scored
        .reports
        .pop()
        .unwrap_or_else(|| unreachable!("one report per decoder"));
    let by_id: std::collections::HashMap<&str, UtteranceErrors> = report
        .utterances
        .iter()
        .map(|u| (u.id.as_str(), (&u.words).into()))
        .collect();
    let errors = split
        .iter()
        .map(|u| {
            by_id
                .get(u.id.as_str())
                .copied()
                .ok_or_else(|| format!("{name}: utterance {} was not scored", u.id))
        })
        .collect::<Result<_, _>>()?;
    Ok((scored, errors))
}

/// `count` of `values`, evenly spaced with both ends included (the middle one for a count of 1).
fn spread(values: &[f64], count: usize) -> Vec<f64> {
    let k = count.min(values.len());
    match k {
        0 => Vec::new(),
        1 => vec![values[values.len() / 2]],
        _ => (0..k).map(|j| values[j * (values.len() - 1) / (k - 1)]).collect(),
    }
}

/// Times every run against its dense reference, in back-to-back pairs.
fn measure_speedups(runs: &mut [ScoredRun], dev: &[Utterance], args: &CompareArgs) -> Result<(), String> {
    let timed = &dev[..args.timing_utterances.min(dev.len())];
    let references: Vec<Option<usize>> = {
        let facts: Vec<&RunFacts> = runs.iter().map(|r| &r.scores.run).collect();
        (0..runs.len()).map(|i| reference_index(&facts, i)).collect()
    };
    for (i, reference) in references.into_iter().enumerate() {
        let Some(r) = reference.filter(|&r| r != i) else {
            continue;
        };
        let config = &runs[i].prunable.state.config;
        let timer = DevTimer::new(timed, &runs[i].prunable.state.stats, config.max_batch_frames);
        let speedup = paired(&timer, &runs[r].model, &runs[i].model, args.repeats)?.speedup;
        tell!(
            "{}: {speedup:.2}× the speed of {}",
            runs[i].scores.run.name,
            runs[r].scores.run.name
        );
        runs[i].scores.run.speedup = speedup;
    }
    Ok(())
}

/// The three charts as SVG and PNG; without a font for their text, a warning and none.
fn write_plots(dir: &Path, runs: &[ScoredRun], comparison: &Comparison) -> Result<Vec<PathBuf>, String> {
    if let Err(why) = crate::reports::plots::ensure_font() {
        tell!("warning: no plots: {why}");
        return Ok(Vec::new());
    }
    let seed_index = |run: &ScoredRun| {
        runs.iter()
            .filter(|r| r.scores.run.method == run.scores.run.method)
            .position(|r| std::ptr::eq(r, run))
            .unwrap_or(0)
    };
    let series = |run: &ScoredRun, points: Vec<(f64, f64)>| Series {
        label: format!(
            "{} (seed {})",
            display_method(&run.scores.run.method),
            run.scores.run.seed
        ),
        method: run.scores.run.method.clone(),
        seed_index: seed_index(run),
        points,
    };
    let trade_off = WerAgainstParams {
        series: runs
            .iter()
            .filter(|r| !r.curve.is_empty())
            .map(|r| {
                let mut points = r.curve.clone();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                series(r, points)
            })
            .collect(),
        marks: comparison
            .runs
            .iter()
            .zip(runs)
            .map(|(row, run)| MarkedPoint {
                method: row.run.method.clone(),
                seed_index: seed_index(run),
                x: row.run.params as f64,
                y: row.dev.wer,
                low: row.dev.interval.low,
                high: row.dev.interval.high,
            })
            .collect(),
    };
    let retention = RetentionHistograms {
        series: runs
            .iter()
            .filter_map(|r| {
                let all: Vec<f32> = r
                    .prunable
                    .source
                    .retention
                    .as_ref()?
                    .iter()
                    .flatten()
                    .flatten()
                    .flatten()
                    .copied()
                    .collect();
                Some(series(r, RetentionHistograms::bin(&all, 20)))
            })
            .collect(),
    };
    let training = TrainingCurves {
        loss: runs.iter().map(|r| series(r, r.history.loss.clone())).collect(),
        dev_wer: runs.iter().map(|r| series(r, r.history.dev_wer.clone())).collect(),
    };
    let mut written = Vec::new();
    written.extend(svg_and_png(dir, "wer_vs_params", &trade_off)?);
    if !retention.series.is_empty() {
        written.extend(svg_and_png(dir, "retention", &retention)?);
    }
    written.extend(svg_and_png(dir, "training", &training)?);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_picks_evenly_with_both_ends() {
        let values: Vec<f64> = (0..9).map(f64::from).collect();
        assert_eq!(spread(&values, 4), [0.0, 2.0, 5.0, 8.0]);
        assert_eq!(spread(&values, 1), [4.0]);
        assert_eq!(spread(&values, 20).len(), 9);
        assert!(spread(&[], 3).is_empty());
    }
}
