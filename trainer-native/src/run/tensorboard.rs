//! TensorBoard scalars beside `metrics.jsonl`, in `DIR/tensorboard/`: the training loss,
//! learning rate, gate penalty, L0's expected sparsity and the distillation loss per step; WER
//! and CER at each evaluation; and the 10th, 50th and 90th percentile of every site kind's
//! scores (learned retention, or for ungated runs weight norms relative to the site's
//! strongest) at each snapshot. `tensorboard --logdir runs/` shows a directory of runs.
//!
//! The event file is rebuilt from the run's trace whenever training starts, so a resumed run
//! has each step once (the trace is cut back to the checkpoint first), then grows as the run
//! goes.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use prunelab_engine::gates::SiteKind;
use prunelab_engine::stats::percentile;
use prunelab_engine::store::Trace;
use prunelab_engine::train::TrainEvent;
use tfrecord::{EventWriter, EventWriterConfig};

/// The percentiles written per site kind, with their tag suffixes.
const QUANTILES: [(f64, &str); 3] = [(0.1, "p10"), (0.5, "p50"), (0.9, "p90")];
/// File name; TensorBoard reads any file whose name contains `tfevents`.
const FILE_NAME: &str = "events.out.tfevents.prunelab";

/// The open event file of a run.
pub struct Scalars {
    writer: EventWriter<BufWriter<File>>,
    path: PathBuf,
    /// Whether the run learns gates: it then has a penalty, and its snapshots are retention.
    gated: bool,
}

impl Scalars {
    /// Starts `dir` (the run's `tensorboard/`) afresh with everything `trace` already holds.
    pub fn start(dir: &Path, trace: &Trace, gated: bool) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        let path = dir.join(FILE_NAME);
        let writer = EventWriter::create(&path, EventWriterConfig { auto_flush: false })
            .map_err(|e| format!("{}: cannot create: {e}", path.display()))?;
        let mut scalars = Self { writer, path, gated };
        for event in &trace.events {
            scalars.event(event)?;
        }
        for snapshot in 0..trace.steps.len() {
            scalars.snapshot(trace, snapshot)?;
        }
        scalars.flush()?;
        Ok(scalars)
    }

    /// Writes the scalars of one training or evaluation event.
    pub fn event(&mut self, event: &TrainEvent) -> Result<(), String> {
        match event {
            TrainEvent::Step {
                step,
                loss,
                penalty,
                expected_sparsity,
                distill,
                lr,
                ..
            } => {
                // A step's scalars are logged at the number of steps done, like its evaluations.
                let at = step + 1;
                self.scalar("train/loss", at, *loss)?;
                self.scalar("train/lr", at, *lr as f32)?;
                if self.gated {
                    self.scalar("train/penalty", at, *penalty)?;
                }
                if let Some(sparsity) = expected_sparsity {
                    self.scalar("train/expected_sparsity", at, *sparsity)?;
                }
                if let Some(distill) = distill {
                    self.scalar("train/distill", at, *distill)?;
                }
                Ok(())
            }
            TrainEvent::SkippedStep { .. } => Ok(()),
            TrainEvent::Eval {
                step, split, wer, cer, ..
            } => {
                self.scalar(&format!("{split}/wer"), *step, *wer as f32)?;
                self.scalar(&format!("{split}/cer"), *step, *cer as f32)?;
                self.flush()
            }
        }
    }

    /// Writes the percentiles of snapshot `index` of `trace`, per site kind (all blocks).
    pub fn snapshot(&mut self, trace: &Trace, index: usize) -> Result<(), String> {
        let step = trace.steps[index];
        for kind in SiteKind::ALL {
            let mut scores: Vec<f64> = trace
                .sites
                .iter()
                .enumerate()
                .filter(|(_, site)| site.kind == kind)
                .flat_map(|(i, _)| trace.site_scores(index, i).iter().map(|&x| f64::from(x)))
                .collect();
            if scores.is_empty() {
                continue;
            }
            scores.sort_by(f64::total_cmp);
            for (q, suffix) in QUANTILES {
                let value = percentile(&scores, q).unwrap_or_else(|| unreachable!("scores are not empty"));
                let score_name = if self.gated {
                    "retention"
                } else {
                    "relative_weight_norm"
                };
                let tag = format!("{score_name}/{}/{suffix}", kind.name());
                self.scalar(&tag, step, value as f32)?;
            }
        }
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), String> {
        self.writer
            .flush()
            .map_err(|e| format!("{}: cannot write: {e}", self.path.display()))
    }

    fn scalar(&mut self, tag: &str, step: usize, value: f32) -> Result<(), String> {
        self.writer
            .write_scalar(tag, step as i64, value)
            .map_err(|e| format!("{}: cannot write: {e}", self.path.display()))
    }
}
