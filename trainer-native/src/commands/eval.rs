//! `prunelab eval`: score a checkpoint on a split.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::burn::module::Module;
use prunelab_engine::data::LoadOptions;
use prunelab_engine::decode::Decoder;
use prunelab_engine::infer::evaluate;
use prunelab_engine::model::Preset;
use prunelab_engine::readback::block_on;
use serde_json::json;

use crate::data::corpus_source::{CorpusChoice, CorpusSource, report_skipped};
use crate::data::eval_stream::{Scorer, write_hypotheses};
use crate::data::stream::default_workers;
use crate::models::model_source::LoadedModel;
use crate::models::model_source::open_model;
use crate::options::decoding::DecodeArgs;
use crate::options::device::{DeviceChoice, pick};
use crate::options::parse::{between, finite, parse_preset};
use crate::progress;
use crate::reports::wer_table::{print_subset_table, print_summary};

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint written by `prunelab train`, or a pruned export from `prunelab prune` (its
    /// directory or manifest.json) or from the lab's "Download model" (the .tar as it is).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Split to score.
    #[arg(long, default_value = "dev", value_parser = ["train", "dev", "test"])]
    split: String,
    /// Directory subsets to score one by one, comma-separated (with --librispeech, e.g.
    /// dev-clean,dev-other,test-clean,test-other; default: the subsets of --split). Each is
    /// streamed from disk, so any size fits in memory.
    #[arg(long, value_delimiter = ',')]
    subsets: Vec<String>,
    /// Where per-subset hypotheses (`hyp-<subset>.txt`) go with --librispeech or --subsets
    /// (default: beside the checkpoint).
    #[arg(long)]
    hyp_dir: Option<PathBuf>,
    /// Feature-extraction threads (default: one per core).
    #[arg(long, value_parser = between::<1, 256>)]
    workers: Option<usize>,
    #[command(flatten)]
    corpus: CorpusChoice,
    /// Refuse a checkpoint of any other preset.
    #[arg(long, value_parser = parse_preset)]
    preset: Option<Preset>,
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// Fail on the first bad corpus item instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Print the result as JSON (with per-utterance hypotheses).
    #[arg(long)]
    json: bool,
    /// Retention threshold for a gated checkpoint (default: the run's).
    #[arg(long, value_parser = finite)]
    threshold: Option<f64>,
    #[command(flatten)]
    decode: DecodeArgs,
}

pub fn run(args: EvalArgs) -> Result<(), String> {
    let (device, device_label) = pick(args.device)?;
    let loaded = open_model(&args.checkpoint, args.preset, args.threshold, &device)?;
    let name = loaded.name.clone();
    let corpus = args.corpus.open()?;
    if !args.subsets.is_empty() || matches!(corpus, CorpusSource::LibriSpeech { .. }) {
        return score_subsets(&args, &corpus, &loaded, &device_label);
    }
    let split = corpus.load(&args.split, &LoadOptions::plain(&loaded.config.fbank, args.strict))?;
    let decoder = args.decode.build(&corpus)?;
    let greedy = Decoder::Greedy;
    let mut reports = block_on(evaluate(
        &loaded.model,
        &loaded.masks,
        &split.utterances,
        &loaded.stats,
        loaded.config.max_batch_frames,
        &[&decoder, &greedy],
    ))
    .map_err(|e| format!("{name}: {e}"))?;
    let greedy_report = reports.pop().unwrap_or_else(|| unreachable!("one report per decoder"));
    let report = reports.pop().unwrap_or_else(|| unreachable!("one report per decoder"));
    if args.json {
        let out = json!({
            "checkpoint": name, "kind": loaded.kind, "split": args.split, "device": device_label,
            "step": loaded.step, "parameters": loaded.model.num_params(),
            "decoder": decoder.describe(),
            "wer": report.wer(), "cer": report.cer(), "ser": report.ser(), "skipped_items": split.skipped.len(),
            "greedy": { "wer": greedy_report.wer(), "cer": greedy_report.cer(), "ser": greedy_report.ser() },
            "report": report,
        });
        say!("{out}");
    } else {
        say!(
            "{name}: {}, preset {}, {} parameters{} · {} · {device_label}",
            loaded.kind,
            loaded.config.preset.name(),
            loaded.model.num_params(),
            loaded.step.map_or(String::new(), |s| format!(", step {s}")),
            args.split
        );
        say!("decoder: {}", decoder.describe());
        print_summary(&report)?;
        say!(
            "greedy decoding for comparison: WER {:.2}%  CER {:.2}%",
            greedy_report.wer(),
            greedy_report.cer()
        );
    }
    Ok(())
}

/// Scores each subset on its own, streamed, and writes its hypotheses: the LibriSpeech report.
fn score_subsets(
    args: &EvalArgs,
    corpus: &CorpusSource,
    loaded: &LoadedModel,
    device_label: &str,
) -> Result<(), String> {
    let subsets = if args.subsets.is_empty() {
        corpus.subsets(&args.split)
    } else {
        args.subsets.clone()
    };
    let decoder = args.decode.build(corpus)?;
    let hyp_dir = args.hyp_dir.clone().unwrap_or_else(|| {
        let dir = if args.checkpoint.is_dir() {
            args.checkpoint.clone()
        } else {
            args.checkpoint.parent().map(PathBuf::from).unwrap_or_default()
        };
        dir.join("eval")
    });
    std::fs::create_dir_all(&hyp_dir).map_err(|e| format!("{}: cannot create: {e}", hyp_dir.display()))?;
    let scorer = Scorer {
        model: &loaded.model,
        masks: &loaded.masks,
        stats: &loaded.stats,
        fbank: &loaded.config.fbank,
        max_batch_frames: loaded.config.max_batch_frames,
        workers: args.workers.unwrap_or_else(default_workers).max(1),
    };
    let mut results = Vec::new();
    for subset in &subsets {
        let index = corpus.index(std::slice::from_ref(subset), args.strict)?;
        tell!("scoring {subset}: {} utterances", index.entries.len());
        let bar = progress::counter(index.entries.len(), format!("scoring {subset}"));
        let (mut reports, skipped) = scorer.score(&index.entries, &[&decoder], args.strict, |done| {
            bar.set_position(done as u64)
        })?;
        bar.finish_and_clear();
        report_skipped(&skipped, subset);
        let report = reports.pop().unwrap_or_else(|| unreachable!("one report per decoder"));
        write_hypotheses(&hyp_dir.join(format!("hyp-{subset}.txt")), &report)?;
        results.push((subset.clone(), report, index.skipped.len() + skipped.len()));
    }
    if args.json {
        let per_subset: serde_json::Map<String, serde_json::Value> = results
            .iter()
            .map(|(name, r, skipped)| {
                (
                    name.clone(),
                    json!({ "wer": r.wer(), "cer": r.cer(), "ser": r.ser(), "words": r.words,
                            "utterances": r.utterances.len(), "skipped_items": skipped }),
                )
            })
            .collect();
        say!(
            "{}",
            json!({
                "checkpoint": loaded.name, "kind": loaded.kind, "device": device_label,
                "parameters": loaded.model.num_params(), "decoder": decoder.describe(),
                "subsets": per_subset, "hypotheses": hyp_dir,
            })
        );
    } else {
        say!(
            "{}: {}, preset {}, {} parameters · {device_label}",
            loaded.name,
            loaded.kind,
            loaded.config.preset.name(),
            loaded.model.num_params()
        );
        say!("decoder: {}", decoder.describe());
        let rows: Vec<(&str, &_)> = results.iter().map(|(n, r, _)| (n.as_str(), r)).collect();
        print_subset_table(&rows)?;
        say!("hypotheses: {}", hyp_dir.display());
    }
    Ok(())
}
