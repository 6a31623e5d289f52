//! `prunelab fbank`: the features the model sees, for inspection in NumPy.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::audio::{FbankConfig, MAX_AUDIO_SAMPLES, SAMPLE_RATE, fbank, read_audio_file, resample};

use crate::atomic::{refuse_overwriting_inputs, write_atomically};
use crate::reports::npy::encode_f32_2d;
use crate::run::dir::refuse_replacing_a_runs_file;

#[derive(Args)]
pub struct FbankArgs {
    /// WAV or FLAC file (mono). Other sample rates are resampled to 16 kHz.
    audio: PathBuf,
    /// Output .npy file, float32 [frames, 80].
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even when it is a file of a training run (its checkpoint, metrics…).
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: FbankArgs) -> Result<(), String> {
    refuse_overwriting_inputs("--out", &args.out, &[&args.audio])?;
    refuse_replacing_a_runs_file("--out", &args.out, args.overwrite)?;
    let audio = read_audio_file(&args.audio).map_err(|e| e.to_string())?;
    // Bounded like decoding: a long file at a low rate grows 16-fold in resampling.
    let resampled_len = audio.samples.len() as u64 * u64::from(SAMPLE_RATE) / u64::from(audio.sample_rate);
    if resampled_len > MAX_AUDIO_SAMPLES as u64 {
        return Err(format!(
            "{}: at {SAMPLE_RATE} Hz it would be {resampled_len} samples, more than the {MAX_AUDIO_SAMPLES} one file may hold",
            args.audio.display()
        ));
    }
    let samples = if audio.sample_rate == SAMPLE_RATE {
        audio.samples
    } else {
        tell!(
            "note: {} is at {} Hz; resampling to {SAMPLE_RATE} Hz",
            args.audio.display(),
            audio.sample_rate
        );
        resample(&audio.samples, audio.sample_rate, SAMPLE_RATE)
    };
    let config = FbankConfig::default();
    let feats = fbank(&samples, &config);
    let frames = feats.len() / config.num_bins;
    if frames == 0 {
        return Err(format!("{}: shorter than one 25 ms frame", args.audio.display()));
    }
    write_atomically(&args.out, &encode_f32_2d(&feats, frames, config.num_bins))?;
    say!(
        "wrote {} ({frames} frames × {} bins)",
        args.out.display(),
        config.num_bins
    );
    Ok(())
}
