//! `prunelab eval`: score a checkpoint on a split.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::burn::module::Module;
use prunelab_engine::data::LoadOptions;
use prunelab_engine::decode::Decoder;
use prunelab_engine::model::Preset;
use prunelab_engine::train::evaluate_decoders;
use serde_json::json;

use crate::corpus_source::{CorpusSource, default_pack_path};
use crate::decoding::DecodeArgs;
use crate::device::{DeviceChoice, pick};
use crate::model_source::open_model;
use crate::train::parse_preset;
use crate::wer::print_summary;

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint written by `prunelab train`, or a pruned export from `prunelab prune` (its
    /// directory or manifest.json).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Split to score.
    #[arg(long, default_value = "dev", value_parser = ["train", "dev", "test"])]
    split: String,
    /// Corpus: a packed .plc file or a LibriSpeech-layout directory.
    #[arg(long)]
    corpus: Option<PathBuf>,
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
    #[arg(long)]
    threshold: Option<f64>,
    #[command(flatten)]
    decode: DecodeArgs,
}

pub fn run(args: EvalArgs) -> Result<(), String> {
    let (device, device_label) = pick(args.device)?;
    let loaded = open_model(&args.checkpoint, args.preset, args.threshold, &device)?;
    let name = loaded.name.clone();
    let corpus = CorpusSource::open(&args.corpus.unwrap_or_else(default_pack_path))?;
    let split = corpus.load(&args.split, &LoadOptions::plain(&loaded.config.fbank, args.strict))?;
    let decoder = args.decode.build(&corpus)?;
    let greedy = Decoder::Greedy;
    let mut reports = evaluate_decoders(
        &loaded.model,
        &loaded.masks,
        &split.utterances,
        &loaded.stats,
        loaded.config.max_batch_frames,
        &[&decoder, &greedy],
    );
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
        println!("{out}");
    } else {
        println!(
            "{name}: {}, preset {}, {} parameters{} · {} · {device_label}",
            loaded.kind,
            loaded.config.preset.name(),
            loaded.model.num_params(),
            loaded.step.map_or(String::new(), |s| format!(", step {s}")),
            args.split
        );
        println!("decoder: {}", decoder.describe());
        print_summary(&report);
        println!(
            "greedy decoding for comparison: WER {:.2}%  CER {:.2}%",
            greedy_report.wer(),
            greedy_report.cer()
        );
    }
    Ok(())
}
