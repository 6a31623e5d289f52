//! The training loop: step, log, evaluate, snapshot and checkpoint at intervals, and stop
//! cleanly on Ctrl-C, on repeated non-finite losses, or (with `--strict`) on a bad item.

use std::io::Write;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use prunelab_engine::data::Utterance;
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{Recorded, Trace, encode_checkpoint, encode_trace};
use prunelab_engine::train::{CutEval, Run, RunEvent, StepBatch, TrainEvent, Trainer};

use crate::atomic::write_atomically;
use crate::data::train_data::TrainData;
use crate::run::dir::RunDir;
use crate::run::interrupt;
use crate::run::tensorboard::Scalars;

/// Fixed settings of the loop.
pub struct LoopSettings<'a> {
    pub run: &'a RunDir,
    pub keep_checkpoints: usize,
    pub max_bad_steps: usize,
    pub strict: bool,
}

/// How the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum LoopEnd {
    Finished,
    /// Ctrl-C or SIGTERM: a checkpoint was saved; `--resume` continues.
    Interrupted,
}

/// What the loop saw besides the steps.
pub struct LoopOutcome {
    pub end: LoopEnd,
    /// Streamed items left out of their batch (unreadable, too short for the transcript).
    pub skipped_items: usize,
    /// The last epoch trained in (streamed corpora only).
    pub epoch: Option<usize>,
}

/// Where the loop writes what a run's events say.
pub struct RunRecords<'a, W: Write> {
    pub metrics: &'a mut W,
    pub trace: &'a mut Trace,
    pub scalars: &'a mut Scalars,
}

/// Drives `run` to its end (or to Ctrl-C), showing progress and writing what its events say:
/// metrics lines, the trace, TensorBoard scalars, checkpoints. The schedule is the run's own.
pub fn run_loop<W: Write>(
    run: &mut Run,
    data: &mut TrainData,
    settings: &LoopSettings<'_>,
    records: RunRecords<'_, W>,
) -> Result<LoopOutcome, String> {
    let steps = run.trainer().config.steps;
    let bar = ProgressBar::with_draw_target(Some(steps as u64), crate::progress::draw_target());
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} · {msg} · ETA {eta}").map_err(|e| e.to_string())?);
    bar.set_position(run.steps_done() as u64);
    data.start(&run.trainer().config, run.steps_done());
    let mut log = EventLog {
        bar: &bar,
        metrics: records.metrics,
        trace: records.trace,
        scalars: records.scalars,
        run_dir: settings.run,
        started: Instant::now(),
        smoothed_loss: None,
        utterances_seen: 0,
        epoch: None,
    };
    for event in block_on(run.begin()).map_err(|e| e.to_string())? {
        log.record(&event)?;
    }
    let mut outcome = LoopOutcome {
        end: LoopEnd::Finished,
        skipped_items: 0,
        epoch: None,
    };
    let mut bad_steps = BadSteps::new(settings.max_bad_steps);
    while !run.is_finished() {
        let events = if let TrainData::InMemory { utterances: train, .. } = &*data {
            block_on(run.step(StepBatch::Planned(train)))
        } else {
            let (epoch, utterances, skipped) = data.next_streamed()?.ok_or("no streamed batch")?;
            outcome.epoch = Some(epoch);
            log.epoch = Some(epoch);
            outcome.skipped_items += skipped.len();
            for problem in &skipped {
                say(&bar, format!("skipped {problem}"));
            }
            if settings.strict && !skipped.is_empty() {
                log.save(run.trainer(), settings)?;
                return Err(format!("{} (--strict stops at the first bad item)", skipped[0]));
            }
            let refs: Vec<&Utterance> = utterances.iter().collect();
            block_on(run.step(StepBatch::Given(&refs)))
        };
        let events = events.map_err(|e| format!("step {}: {e}", run.steps_done()))?;
        for event in &events {
            log.record(event)?;
            if let RunEvent::Trained(trained) = event
                && bad_steps.too_many_after(trained)
            {
                let saved = log.save(run.trainer(), settings)?;
                bar.finish_and_clear();
                return Err(format!(
                    "{} steps in a row had a non-finite loss (or no readable audio), up to step {}; \
                     stopped before the weights could be harmed. The last good state is {}; lower --lr or \
                     check the data, then start again from it",
                    bad_steps.in_a_row,
                    run.steps_done(),
                    saved.display()
                ));
            }
            if let RunEvent::CheckpointDue { .. } = event {
                log.save(run.trainer(), settings)?;
            }
        }
        bar.inc(1);
        if interrupt::requested() && !run.is_finished() {
            let saved = log.save(run.trainer(), settings)?;
            bar.finish_and_clear();
            tell!("stopped at step {}; saved {}", run.steps_done(), saved.display());
            outcome.end = LoopEnd::Interrupted;
            return Ok(outcome);
        }
    }
    bar.finish_and_clear();
    // Events after the last snapshot (the final evaluation) reach the files too.
    log.write_trace()?;
    log.scalars.flush()?;
    Ok(outcome)
}

/// Where a run's events go on the command line: the progress bar and lines above it, the
/// metrics log and the trace file.
struct EventLog<'a, W: Write> {
    bar: &'a ProgressBar,
    metrics: &'a mut W,
    trace: &'a mut Trace,
    scalars: &'a mut Scalars,
    run_dir: &'a RunDir,
    started: Instant,
    smoothed_loss: Option<f32>,
    utterances_seen: usize,
    epoch: Option<usize>,
}

impl<W: Write> EventLog<'_, W> {
    fn record(&mut self, event: &RunEvent) -> Result<(), String> {
        let recorded = self
            .trace
            .record_event(event)
            .map_err(|mismatch| format!("{}: {mismatch}", self.run_dir.path("trace.pltrace").display()))?;
        match event {
            RunEvent::Trained(trained) => {
                self.show_step(trained);
                self.log(trained)
            }
            RunEvent::Cut {
                step,
                params_before,
                params_after,
            } => {
                say(
                    self.bar,
                    format!(
                        "step {step:>6}: pruned by magnitude to {params_after} parameters (from {params_before}); fine-tuning"
                    ),
                );
                Ok(())
            }
            RunEvent::Snapshot { .. } => {
                if let Recorded::Snapshot { row } = recorded {
                    self.scalars.snapshot(self.trace, row)?;
                }
                self.write_trace()
            }
            RunEvent::Eval(eval) => {
                say(self.bar, eval_line(eval));
                self.log(&eval.train_event())
            }
            RunEvent::CheckpointDue { .. } => Ok(()),
        }
    }

    fn show_step(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Step {
                loss,
                penalty,
                utterances,
                ..
            } => {
                self.utterances_seen += utterances;
                let smoothed = self.smoothed_loss.map_or(*loss, |s| 0.95 * s + 0.05 * loss);
                self.smoothed_loss = Some(smoothed);
                let rate = self.utterances_seen as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                let epoch = self.epoch.map_or(String::new(), |e| format!("epoch {} · ", e + 1));
                let penalty = if *penalty != 0.0 {
                    format!(" · penalty {penalty:.3}")
                } else {
                    String::new()
                };
                self.bar
                    .set_message(format!("{epoch}loss {smoothed:.3}{penalty} · {rate:.1} utt/s"));
            }
            TrainEvent::SkippedStep { step } => say(
                self.bar,
                format!("step {step:>6}: non-finite loss or empty batch; skipped, weights untouched"),
            ),
            TrainEvent::Eval { .. } => {}
        }
    }

    /// Writes the trace file as it stands.
    fn write_trace(&self) -> Result<(), String> {
        write_atomically(&self.run_dir.path("trace.pltrace"), &encode_trace(self.trace))
    }

    /// Saves the current state as a checkpoint, the trace and the scalars first: a resumed run
    /// cuts the trace back to the checkpoint's step, so the file must hold every event up to
    /// it (snapshots alone would leave out the steps and evaluations since the last one).
    fn save(&mut self, trainer: &Trainer, settings: &LoopSettings<'_>) -> Result<std::path::PathBuf, String> {
        self.write_trace()?;
        self.scalars.flush()?;
        save_checkpoint(trainer, settings)
    }

    /// Appends `event` to the metrics log and the TensorBoard scalars (the trace has it
    /// already).
    fn log(&mut self, event: &TrainEvent) -> Result<(), String> {
        self.scalars.event(event)?;
        let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
        writeln!(self.metrics, "{line}").map_err(|e| format!("metrics.jsonl: cannot write: {e}"))
    }
}

/// "step 500: dev WER 31.20%  CER 12.02% (greedy, 48 utts) · kept 812/1056 units".
fn eval_line(eval: &CutEval) -> String {
    let (kept, total) = eval.kept_units();
    let kept = if total > 0 {
        format!(" · kept {kept}/{total} units")
    } else {
        String::new()
    };
    format!(
        "step {:>6}: dev WER {:.2}%  CER {:.2}% (greedy, {} utts){kept}",
        eval.step,
        eval.report.wer(),
        eval.report.cer(),
        eval.report.utterances.len(),
    )
}

/// Skipped steps in a row (non-finite loss, or no readable audio in the batch), against a limit.
struct BadSteps {
    in_a_row: usize,
    limit: usize,
}

impl BadSteps {
    fn new(limit: usize) -> Self {
        Self {
            in_a_row: 0,
            limit: limit.max(1),
        }
    }

    /// Counts `event`; true once `limit` skipped steps came in a row.
    fn too_many_after(&mut self, event: &TrainEvent) -> bool {
        match event {
            TrainEvent::SkippedStep { .. } => self.in_a_row += 1,
            TrainEvent::Step { .. } => self.in_a_row = 0,
            TrainEvent::Eval { .. } => {}
        }
        self.in_a_row >= self.limit
    }
}

/// Writes the current state as the checkpoint of its step, keeping the newest few.
fn save_checkpoint(trainer: &Trainer, settings: &LoopSettings<'_>) -> Result<std::path::PathBuf, String> {
    let bytes = encode_checkpoint(&trainer.state().map_err(|e| e.to_string())?);
    settings
        .run
        .save_checkpoint(trainer.step(), &bytes, settings.keep_checkpoints)
}

/// A progress line above the bar, or on stderr when there is no terminal to draw the bar on
/// (indicatif then hides the bar and everything it would print).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        tell!("{line}");
    } else {
        bar.println(line);
    }
}

/// An empty trace for `trainer`'s run.
pub fn new_trace(trainer: &Trainer) -> Trace {
    Trace::for_run(&trainer.config, "prunelab train")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize) -> TrainEvent {
        TrainEvent::Step {
            step,
            loss: 1.0,
            penalty: 0.0,
            expected_sparsity: None,
            distill: None,
            lr: 1e-3,
            utterances: 1,
            audio_seconds: 1.0,
        }
    }

    #[test]
    fn only_skipped_steps_in_a_row_stop_the_run() {
        let mut guard = BadSteps::new(3);
        let skipped = |step| TrainEvent::SkippedStep { step };
        assert!(!guard.too_many_after(&skipped(0)));
        assert!(!guard.too_many_after(&skipped(1)));
        assert!(!guard.too_many_after(&step(2)), "a good step resets the count");
        assert!(!guard.too_many_after(&skipped(3)));
        assert!(!guard.too_many_after(&skipped(4)));
        assert!(guard.too_many_after(&skipped(5)));
        assert_eq!(guard.in_a_row, 3);
    }
}
