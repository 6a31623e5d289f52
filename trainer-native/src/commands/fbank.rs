//! `prunelab fbank`: the features the model sees, for inspection in NumPy.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::audio::{FbankConfig, SAMPLE_RATE, fbank, read_audio_file, resample};

use crate::reports::npy::encode_f32_2d;
use crate::run::atomic::{refuse_overwriting_inputs, write_atomically};

#[derive(Args)]
pub struct FbankArgs {
    /// WAV or FLAC file (mono). Other sample rates are resampled to 16 kHz.
    audio: PathBuf,
    /// Output .npy file, float32 [frames, 80].
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: FbankArgs) -> Result<(), String> {
    refuse_overwriting_inputs("--out", &args.out, &[&args.audio])?;
    let audio = read_audio_file(&args.audio).map_err(|e| e.to_string())?;
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
