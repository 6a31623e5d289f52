//! `prunelab train`: one training run from corpus to checkpoint, metrics and final WER. Read
//! top to bottom: the options (`options`), everything checked and loaded before the first step
//! (`setup`), the loop (`crate::run::driver`), and what a finished run leaves (`finish`).

mod finish;
mod options;
mod setup;

use std::path::Path;
use std::time::Instant;

use clap::Parser;
use prunelab_engine::train::{Run, RunOptions};

pub use options::TrainArgs;

use crate::run::dir::RunDir;
use crate::run::driver::{LoopEnd, LoopSettings, run_loop};
use crate::run::interrupt;
use finish::{Trained, write_results};
use options::SavedCommand;
use setup::Setup;

/// `prunelab train`; `raw_args` are the arguments after `train`, saved for `--resume`.
pub fn run(args: TrainArgs, raw_args: Vec<String>) -> Result<(), String> {
    let Some(dir) = args.resume.clone() else {
        return train(args, raw_args, false);
    };
    let others: Vec<&String> = raw_args
        .iter()
        .filter(|a| *a != "--resume" && !a.starts_with("--resume=") && Path::new(a) != dir)
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "--resume takes no other options (got {others:?}); the run continues with the options in {}",
            dir.join("run.json").display()
        ));
    }
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (saved, cwd) = RunDir::load_invocation(&dir)?;
    // Relative paths in the saved options (corpus, teacher) are relative to where the run began.
    std::env::set_current_dir(&cwd).map_err(|e| {
        format!(
            "{}: the run was started in {}, which is gone ({e})",
            dir.join("run.json").display(),
            cwd.display()
        )
    })?;
    let parsed = SavedCommand::try_parse_from(std::iter::once("prunelab train".to_string()).chain(saved.clone()))
        .map_err(|e| {
            format!(
                "{}: the saved options do not parse: {e}",
                dir.join("run.json").display()
            )
        })?;
    let mut args = parsed.args;
    args.out = dir;
    train(args, saved, true)
}

fn train(args: TrainArgs, invocation: Vec<String>, resuming: bool) -> Result<(), String> {
    let setup = Setup::check(&args, resuming)?;
    // Everything has checked out (the largest batch included): only now is --out touched.
    let mut records = setup.claim(&args, &invocation)?;
    let Setup {
        context,
        mut data,
        dev,
        trainer,
        ..
    } = setup;
    interrupt::install()?;
    let settings = LoopSettings {
        run: &context.run,
        keep_checkpoints: args.keep_checkpoints as usize,
        max_bad_steps: args.max_bad_steps as usize,
        strict: args.strict,
    };
    let options = RunOptions {
        dev,
        checkpoint_every: Some(args.checkpoint_every as usize),
        decoder: None,
    };
    let first_step = trainer.step();
    let mut scheduled = Run::new(trainer, options);
    let started = Instant::now();
    let outcome = run_loop(&mut scheduled, &mut data, &settings, records.as_run_records())?;
    let skipped_at_load = data.skipped_at_load();
    drop(data); // its streaming workers stop before the final scoring
    if outcome.end == LoopEnd::Interrupted {
        tell!("continue with: prunelab train --resume {}", args.out.display());
        std::process::exit(130);
    }
    let trained = Trained {
        trainer: scheduled.into_trainer(),
        first_step,
        seconds: started.elapsed().as_secs_f64(),
        skipped_items: skipped_at_load + outcome.skipped_items,
        epoch: outcome.epoch,
    };
    write_results(&args, &context, trained)
}
