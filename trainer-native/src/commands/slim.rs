//! `prunelab slim`: a finished run's checkpoint without what only resuming it needs, to keep,
//! share, compare or teach from at about a third of the size.

use std::path::PathBuf;

use clap::Args;
use prunelab_engine::store::encode_checkpoint;

use crate::atomic::{refuse_overwriting_inputs, write_atomically};
use crate::models::read_checkpoint;
use crate::run::dir::refuse_replacing_a_runs_file;

#[derive(Args)]
pub struct SlimArgs {
    /// A training checkpoint (.plc).
    checkpoint: PathBuf,
    /// Where to write the slim checkpoint. It keeps the config, feature statistics, weights and
    /// gates, so `prune`, `sweep`, `eval`, `compare` and `--teacher` read it as they read the
    /// full one; `train --resume` refuses it while steps remain.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out even when it is a file of a training run (its checkpoint, metrics…).
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: SlimArgs) -> Result<(), String> {
    refuse_overwriting_inputs("--out", &args.out, &[&args.checkpoint])?;
    refuse_replacing_a_runs_file("--out", &args.out, args.overwrite)?;
    let state = read_checkpoint(&args.checkpoint)?;
    let full_size = std::fs::metadata(&args.checkpoint).map_or(0, |m| m.len());
    let slim = encode_checkpoint(&state.without_resume_state());
    write_atomically(&args.out, &slim)?;
    tell!(
        "{} written: step {} of {}, {:.1} MB (from {:.1} MB)",
        args.out.display(),
        state.step,
        state.config.steps,
        slim.len() as f64 / 1e6,
        full_size as f64 / 1e6
    );
    Ok(())
}
