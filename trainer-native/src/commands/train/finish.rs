//! After a `prunelab train` run's last step: the final checkpoint, the weights alone when
//! asked for, the final scores on dev and test, and the summary.

use std::path::Path;

use prunelab_engine::burn::module::Module;
use prunelab_engine::model::weights_fingerprint;
use prunelab_engine::store::encode_checkpoint;
use prunelab_engine::train::{Trainer, TrainerState};
use serde_json::json;

use super::options::TrainArgs;
use super::setup::RunContext;
use crate::atomic::write_atomically;
use crate::reports::train_report::FinalScores;

/// How the training went, for the summary.
pub(super) struct Trained {
    pub trainer: Trainer,
    /// The step the run started (or resumed) at.
    pub first_step: usize,
    pub seconds: f64,
    /// Items left out while training (unreadable, too short for their transcript).
    pub skipped_items: usize,
    /// The last epoch trained in (streamed corpora only).
    pub epoch: Option<usize>,
}

/// Writes what a finished run leaves behind (see the module header) and prints its results.
pub(super) fn write_results(args: &TrainArgs, context: &RunContext, trained: Trained) -> Result<(), String> {
    let Trained {
        trainer,
        first_step,
        seconds,
        skipped_items,
        epoch,
    } = trained;
    let RunContext {
        run,
        device_label,
        corpus,
        decoder,
        workers,
    } = context;
    let state = trainer.state().map_err(|e| e.to_string())?;
    write_atomically(&run.path("checkpoint.plc"), &encode_checkpoint(&state))?;
    if let Some(path) = &args.weights_out {
        write_weights(path, &state)?;
    }
    let finals = FinalScores::compute(&trainer, corpus, decoder, args.strict, *workers)?;
    finals.write_hypotheses(run)?;
    let fingerprint = weights_fingerprint(&trainer.inference_model()).map_err(|e| e.to_string())?;
    let summary = finals.summary(json!({
        "preset": trainer.config.preset.name(),
        "device": device_label,
        "steps": trainer.step(),
        "first_step": first_step,
        "skipped_steps": trainer.skipped_steps(),
        "train_seconds": seconds,
        "parameters": trainer.inference_model().num_params(),
        // Equal on two runs exactly when their final weights are bit-identical.
        "weights_fingerprint": format!("{fingerprint:016x}"),
        "skipped_items": skipped_items + finals.skipped_items(),
        "epochs": epoch.map(|e| e + 1),
        "decoder": decoder.describe(),
    }));
    let summary_path = run.path("summary.json");
    let summary_text = serde_json::to_string_pretty(&summary)
        .map_err(|e| format!("{}: cannot write the summary: {e}", summary_path.display()))?;
    write_atomically(&summary_path, summary_text.as_bytes())?;
    if args.json {
        say!("{summary}");
    } else {
        say!(
            "trained {} steps in {:.0} s on {device_label}",
            trainer.step() - first_step,
            seconds
        );
        say!("decoder: {}", decoder.describe());
        finals.print()?;
        say!("checkpoint: {}", run.path("checkpoint.plc").display());
    }
    Ok(())
}

/// The model alone, for `--weights-out`.
fn write_weights(path: &Path, state: &TrainerState) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: cannot create: {e}", parent.display()))?;
    }
    write_atomically(path, &encode_checkpoint(&state.weights_only()))?;
    tell!("weights written to {}", path.display());
    Ok(())
}
