//! `prunelab logits`: the model's output for features written by `prunelab fbank`, as `.npy`
//! files, so that another implementation (the PyTorch package in `python/`, ONNX Runtime) can
//! be checked against Prunelab's own inference number for number.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::data::MAX_UTTERANCE_SECONDS;
use prunelab_engine::data::{ShapeBuckets, Utterance};
use prunelab_engine::infer::prepare_batch;
use prunelab_engine::model::ConvSubsampling;
use prunelab_engine::readback::{block_on, read_floats};

use crate::atomic::{refuse_overwriting_inputs, write_atomically};
use crate::models::model_source::open_model;
use crate::options::device::{DeviceChoice, pick};
use crate::reports::npy::{decode_f32_2d, encode_f32_2d};

#[derive(Args)]
pub struct LogitsArgs {
    /// A pruned export (its directory, manifest.json or the lab's .tar) or a training checkpoint (.plc; a gated
    /// one runs under its inference gates).
    #[arg(long)]
    model: PathBuf,
    /// Directory for the outputs: `<stem of each input>.npy`, float32 [frames after
    /// subsampling, vocabulary], unnormalised scores of the valid frames only.
    #[arg(long)]
    out: PathBuf,
    /// Features as `prunelab fbank` writes them (float32 [frames, 80], before normalisation).
    /// They run as one zero-padded batch, as a batch in another implementation would.
    #[arg(required = true)]
    features: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceChoice,
}

pub fn run(args: LogitsArgs) -> Result<(), String> {
    // The inputs first: a bad file is reported before a model is loaded.
    let mut inputs = Vec::with_capacity(args.features.len());
    let mut outputs = Vec::with_capacity(args.features.len());
    for path in &args.features {
        let name = path.display().to_string();
        let bytes = read_bounded(path, limits::FEATURES, "feature file").map_err(|e| e.to_string())?;
        let (feats, frames, cols) = decode_f32_2d(&bytes, &name)?;
        if feats.iter().any(|v| !v.is_finite()) {
            return Err(format!("{name}: holds values that are not finite"));
        }
        // Attention's memory grows with the square of the length: 200,000 frames asked for
        // 6.5 GB and aborted. Held to the corpus's bound on an utterance (100 frames a second).
        if frames as f64 / 100.0 > MAX_UTTERANCE_SECONDS {
            return Err(format!(
                "{name}: {frames} frames ({:.0} s) is longer than an utterance may be ({MAX_UTTERANCE_SECONDS} s): \
                 attention's memory grows with the square of the length; cut it into utterances",
                frames as f64 / 100.0
            ));
        }
        // Subsampling's two stride-2 convolutions need 7 frames to give one.
        if ConvSubsampling::output_len(frames) == 0 {
            return Err(format!(
                "{name}: {frames} frames is too short: the model needs at least 7 (70 ms)"
            ));
        }
        let stem = path
            .file_stem()
            .ok_or_else(|| format!("{name}: no file name"))?
            .to_string_lossy()
            .into_owned();
        let output = args.out.join(format!("{stem}.npy"));
        if outputs.contains(&output) {
            return Err(format!(
                "{name}: another input has the same file name; outputs would collide"
            ));
        }
        outputs.push(output);
        inputs.push((name, stem, feats, frames, cols));
    }
    let (device, _) = pick(args.device)?;
    let loaded = open_model(&args.model, None, None, &device)?;
    let bins = loaded.config.fbank.num_bins;
    let mut utterances = Vec::with_capacity(inputs.len());
    for (name, id, feats, frames, cols) in inputs {
        if cols != bins {
            return Err(format!("{name}: {cols} features a frame; the model takes {bins}"));
        }
        utterances.push(Utterance {
            id,
            text: String::new(),
            // CTC targets are not used here; one blank keeps the batch's target tensor non-empty.
            tokens: vec![0],
            duration_seconds: frames as f64 * loaded.config.fbank.frame_shift_ms / 1000.0,
            feats,
            frames,
        });
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: cannot create: {e}", args.out.display()))?;
    let features: Vec<&std::path::Path> = args.features.iter().map(PathBuf::as_path).collect();
    for output in &outputs {
        refuse_overwriting_inputs("--out", output, &features)?;
    }
    let batch: Vec<&Utterance> = utterances.iter().collect();
    let prepared = prepare_batch(&batch, &loaded.stats, None, ShapeBuckets::default(), &device);
    let output = loaded
        .model
        .forward_gated(prepared.feats, &prepared.batch.frame_lengths, &loaded.masks);
    let [_, s, v] = output.logits.dims();
    let logits = block_on(read_floats(output.logits, "logits")).map_err(|e| e.to_string())?;
    for (b, path) in outputs.iter().enumerate() {
        let frames = output.lengths[b];
        let rows = &logits[b * s * v..b * s * v + frames * v];
        write_atomically(path, &encode_f32_2d(rows, frames, v))?;
        say!("{} ({frames} frames × {v})", path.display());
    }
    Ok(())
}
