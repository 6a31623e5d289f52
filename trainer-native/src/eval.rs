//! `prunelab eval`: score a checkpoint on a split.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::data::LoadOptions;
use prunelab_engine::decode::Decoder;
use prunelab_engine::model::Preset;
use prunelab_engine::store::{decode_checkpoint, load_gates, load_inference_model};
use prunelab_engine::train::deterministic_block_masks;
use prunelab_engine::train::evaluate_decoders;
use serde_json::json;

use crate::corpus_source::{CorpusSource, default_pack_path};
use crate::decoding::DecodeArgs;
use crate::device::{DeviceChoice, pick};
use crate::train::parse_preset;
use crate::wer::print_summary;

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint written by `prunelab train`.
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
    let name = args.checkpoint.display().to_string();
    let bytes = std::fs::read(&args.checkpoint).map_err(|e| format!("{name}: cannot read: {e}"))?;
    let state = decode_checkpoint(&bytes, &name).map_err(|e| e.to_string())?;
    let (device, device_label) = pick(args.device)?;
    let model = load_inference_model(&state, args.preset, &device, &name).map_err(|e| e.to_string())?;
    let corpus = CorpusSource::open(&args.corpus.unwrap_or_else(default_pack_path))?;
    let split = corpus.load(&args.split, &LoadOptions::plain(&state.config.fbank, args.strict))?;
    let decoder = args.decode.build(&corpus)?;
    // A gated run is scored as it would be pruned: gates at their inference values.
    let threshold = args.threshold.unwrap_or(state.config.prune.threshold);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(format!("--threshold {threshold} is outside [0, 1]"));
    }
    let masks = load_gates(&state, &device, &name)
        .map_err(|e| e.to_string())?
        .map_or_else(Vec::new, |g| deterministic_block_masks(g.deterministic(threshold)));
    let greedy = Decoder::Greedy;
    let mut reports = evaluate_decoders(
        &model,
        &masks,
        &split.utterances,
        &state.stats,
        state.config.max_batch_frames,
        &[&decoder, &greedy],
    );
    let greedy_report = reports.pop().unwrap_or_else(|| unreachable!("one report per decoder"));
    let report = reports.pop().unwrap_or_else(|| unreachable!("one report per decoder"));
    if args.json {
        let out = json!({
            "checkpoint": name, "split": args.split, "device": device_label, "step": state.step,
            "decoder": decoder.describe(),
            "wer": report.wer(), "cer": report.cer(), "ser": report.ser(), "skipped_items": split.skipped.len(),
            "greedy": { "wer": greedy_report.wer(), "cer": greedy_report.cer(), "ser": greedy_report.ser() },
            "report": report,
        });
        println!("{out}");
    } else {
        println!(
            "{name} (step {}, preset {}) on {} · {device_label}",
            state.step,
            state.config.preset.name(),
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
