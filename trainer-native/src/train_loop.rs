//! The training loop: step, log, evaluate, snapshot and checkpoint at intervals, and stop
//! cleanly on Ctrl-C, on repeated non-finite losses, or (with `--strict`) on a bad item.

use std::io::Write;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use prunelab_engine::data::Utterance;
use prunelab_engine::decode::Decoder;
use prunelab_engine::store::{Trace, encode_checkpoint, encode_trace};
use prunelab_engine::train::{TrainEvent, Trainer, evaluate};

use crate::atomic::write_atomically;
use crate::interrupt;
use crate::run_dir::RunDir;
use crate::train::magnitude_cut;
use crate::train_data::TrainData;

/// Fixed settings of the loop.
pub struct LoopSettings<'a> {
    pub run: &'a RunDir,
    /// Utterances scored greedily at each periodic evaluation.
    pub dev: &'a [Utterance],
    pub checkpoint_every: usize,
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

pub fn run_loop(
    trainer: &mut Trainer,
    data: &mut TrainData,
    settings: &LoopSettings<'_>,
    metrics: &mut impl Write,
    trace: &mut Option<Trace>,
) -> Result<LoopOutcome, String> {
    let bar = ProgressBar::new(trainer.config.steps as u64);
    bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} · {msg} · ETA {eta}").map_err(|e| e.to_string())?);
    bar.set_position(trainer.step() as u64);
    data.start(&trainer.config, trainer.step());
    snapshot(trainer, trace.as_mut(), settings.run)?;
    let started = Instant::now();
    let mut outcome = LoopOutcome {
        end: LoopEnd::Finished,
        skipped_items: 0,
        epoch: None,
    };
    let (mut smoothed_loss, mut utterances_seen) = (None::<f32>, 0usize);
    let mut bad_steps = BadSteps::new(settings.max_bad_steps);
    while !trainer.is_finished() {
        let event = if let TrainData::InMemory { utterances: train, .. } = &*data {
            trainer.train_step(train)
        } else {
            let (epoch, utterances, skipped) = data.next_streamed()?.ok_or("no streamed batch")?;
            outcome.epoch = Some(epoch);
            outcome.skipped_items += skipped.len();
            for problem in &skipped {
                say(&bar, format!("skipped {problem}"));
            }
            if settings.strict && !skipped.is_empty() {
                save_checkpoint(trainer, settings)?;
                return Err(format!("{} (--strict stops at the first bad item)", skipped[0]));
            }
            let refs: Vec<&Utterance> = utterances.iter().collect();
            trainer.train_step_on(&refs)
        };
        match &event {
            TrainEvent::Step {
                loss,
                penalty,
                utterances,
                ..
            } => {
                utterances_seen += utterances;
                smoothed_loss = Some(smoothed_loss.map_or(*loss, |s| 0.95 * s + 0.05 * loss));
                let rate = utterances_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
                let epoch = outcome.epoch.map_or(String::new(), |e| format!("epoch {} · ", e + 1));
                let penalty = if trace.is_some() {
                    format!(" · penalty {penalty:.3}")
                } else {
                    String::new()
                };
                bar.set_message(format!(
                    "{epoch}loss {:.3}{penalty} · {rate:.1} utt/s",
                    smoothed_loss.unwrap_or(*loss)
                ));
            }
            TrainEvent::SkippedStep { step } => {
                say(
                    &bar,
                    format!("step {step:>6}: non-finite loss or empty batch; skipped, weights untouched"),
                );
            }
            TrainEvent::Eval { .. } => {}
        }
        log_event(metrics, trace.as_mut(), &event)?;
        bar.inc(1);
        if bad_steps.too_many_after(&event) {
            let saved = save_checkpoint(trainer, settings)?;
            bar.finish_and_clear();
            return Err(format!(
                "{} steps in a row had a non-finite loss (or no readable audio), up to step {}; \
                 stopped before the weights could be harmed. The last good state is {}; lower --lr or \
                 check the data, then start again from it",
                bad_steps.in_a_row,
                trainer.step(),
                saved.display()
            ));
        }
        if let Some(line) = magnitude_cut(trainer)? {
            say(&bar, line);
        }
        let step = trainer.step();
        if step % trainer.config.prune.snapshot_every.max(1) == 0 || trainer.is_finished() {
            snapshot(trainer, trace.as_mut(), settings.run)?;
        }
        let every = trainer.config.eval_every;
        if every > 0 && step % every == 0 && !trainer.is_finished() {
            periodic_eval(trainer, settings.dev, metrics, trace, &bar)?;
        }
        if step % settings.checkpoint_every == 0 || trainer.is_finished() {
            save_checkpoint(trainer, settings)?;
        }
        if interrupt::requested() && !trainer.is_finished() {
            let saved = save_checkpoint(trainer, settings)?;
            bar.finish_and_clear();
            eprintln!("stopped at step {step}; saved {}", saved.display());
            outcome.end = LoopEnd::Interrupted;
            return Ok(outcome);
        }
    }
    bar.finish_and_clear();
    Ok(outcome)
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

fn periodic_eval(
    trainer: &Trainer,
    dev: &[Utterance],
    metrics: &mut impl Write,
    trace: &mut Option<Trace>,
    bar: &ProgressBar,
) -> Result<(), String> {
    let report = evaluate(
        &trainer.inference_model(),
        &trainer.inference_masks(trainer.config.prune.threshold),
        dev,
        &trainer.stats,
        trainer.config.max_batch_frames,
        &Decoder::Greedy,
    );
    say(
        bar,
        format!(
            "step {:>6}: dev WER {:.2}%  CER {:.2}% (greedy, {} utts){}",
            trainer.step(),
            report.wer(),
            report.cer(),
            dev.len(),
            kept_summary(trainer)
        ),
    );
    let eval = TrainEvent::Eval {
        step: trainer.step(),
        split: "dev".into(),
        wer: report.wer(),
        cer: report.cer(),
        utterances: report.utterances.len(),
    };
    log_event(metrics, trace.as_mut(), &eval)
}

/// Writes the current state as the checkpoint of its step, keeping the newest few.
pub fn save_checkpoint(trainer: &Trainer, settings: &LoopSettings<'_>) -> Result<std::path::PathBuf, String> {
    let bytes = encode_checkpoint(&trainer.state()?);
    settings
        .run
        .save_checkpoint(trainer.step(), &bytes, settings.keep_checkpoints)
}

/// A progress line above the bar, or on stderr when there is no terminal to draw the bar on
/// (indicatif then hides the bar and everything it would print).
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

/// An empty trace for a gated run (ungated runs have nothing to trace).
pub fn new_trace(trainer: &Trainer) -> Option<Trace> {
    let retention = trainer.retention()?;
    let c = &trainer.config;
    let description = format!(
        "{} · {} · seed {} · {} steps",
        c.prune.method.name(),
        c.preset.name(),
        c.seed,
        c.steps
    );
    Some(Trace::shaped_like(description, &retention))
}

/// Records the current retention and rewrites the trace file (atomically).
fn snapshot(trainer: &Trainer, trace: Option<&mut Trace>, run: &RunDir) -> Result<(), String> {
    let (Some(trace), Some(retention)) = (trace, trainer.retention()) else {
        return Ok(());
    };
    if trace.steps.last() == Some(&trainer.step()) {
        return Ok(());
    }
    trace.record(trainer.step(), &retention);
    write_atomically(&run.path("trace.pltrace"), &encode_trace(trace))
}

/// " · kept 812/1056 units" for a gated run at its threshold, "" otherwise.
fn kept_summary(trainer: &Trainer) -> String {
    let Some(retention) = trainer.retention() else {
        return String::new();
    };
    let threshold = trainer.config.prune.threshold as f32;
    let all: Vec<f32> = retention
        .iter()
        .flat_map(|s| s.iter().flatten().flatten().copied())
        .collect();
    let kept = all.iter().filter(|&&p| p >= threshold).count();
    format!(" · kept {kept}/{} units", all.len())
}

fn log_event(metrics: &mut impl Write, trace: Option<&mut Trace>, event: &TrainEvent) -> Result<(), String> {
    if let Some(trace) = trace {
        trace.events.push(event.clone());
    }
    let line = serde_json::to_string(event).map_err(|e| e.to_string())?;
    writeln!(metrics, "{line}").map_err(|e| format!("metrics.jsonl: cannot write: {e}"))
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
