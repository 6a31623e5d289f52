//! The loop that owns the training session: it takes widgets' commands, trains while playing,
//! and copies what changed into the page's signals. One loop, so the session is never used by
//! two tasks at once; it yields to the browser after every piece of work.

use std::rc::Rc;
use std::sync::Arc;

use leptos::prelude::*;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::decode::Decoder;
use prunelab_engine::prune::{kept_map, kept_per_site};
use prunelab_engine::store::{Trace, load_export};
use prunelab_engine::train::{TrainEvent, evaluate_decoders_async};

use crate::corpus::LabCorpus;
use crate::lab::{Command, Lab, TraceView};
use crate::session::{LabSession, PrunePoint, SNAPSHOT_EVERY};
use crate::timing::{now_ms, sleep, yield_to_browser};

/// Score the current threshold on dev every this many steps while training.
const EVAL_EVERY: usize = 100;

/// Runs until the page closes.
pub async fn drive(lab: Lab, device: Device, corpus: Rc<LabCorpus>) {
    let mut session = match start(&lab, &device, &corpus, lab.settings.get_untracked()).await {
        Ok(session) => session,
        Err(e) => {
            lab.notify(format!("cannot start training: {e}"));
            return;
        }
    };
    let mut rate = StepRate::default();
    loop {
        match lab.next_command() {
            Some(Command::Reset(settings)) => {
                lab.playing.set(false);
                match start(&lab, &device, &corpus, settings).await {
                    Ok(fresh) => session = fresh,
                    Err(e) => lab.notify(format!("cannot reset: {e}")),
                }
                rate = StepRate::default();
            }
            Some(Command::Step) => {
                lab.playing.set(false);
                step(&lab, &mut session, &corpus, &mut rate).await;
            }
            Some(Command::Prune(threshold)) => prune(&lab, &session, &corpus, threshold).await,
            Some(Command::Sweep) => sweep(&lab, &session, &corpus).await,
            Some(Command::OpenExport {
                name,
                manifest,
                weights,
            }) => {
                open_export(&lab, &device, &corpus, &name, &manifest, &weights).await;
            }
            None if lab.playing.get_untracked() && !session.is_finished() => {
                step(&lab, &mut session, &corpus, &mut rate).await;
                if session.is_finished() {
                    lab.playing.set(false);
                    prune(&lab, &session, &corpus, lab.settings.get_untracked().threshold).await;
                }
            }
            None => {
                rate.pause();
                // Idle: check for commands a few times a second without keeping a core busy.
                sleep(50).await;
            }
        }
        yield_to_browser().await;
    }
}

/// A fresh session: clears the views, takes the first snapshot and scores the dense model.
async fn start(
    lab: &Lab,
    device: &Device,
    corpus: &LabCorpus,
    settings: crate::settings::LabSettings,
) -> Result<LabSession, String> {
    lab.busy.set(Some("building the model…".into()));
    yield_to_browser().await;
    let mut session = LabSession::new(&settings, &corpus.train, device)?;
    lab.settings.set(settings.clone());
    lab.step.set(0);
    lab.steps_per_second.set(0.0);
    lab.frame.set(None);
    lab.trade_off.set(Default::default());
    lab.live.set(TraceView {
        source: "live".into(),
        ..TraceView::default()
    });
    snapshot(lab, &mut session).await;
    lab.busy.set(None);
    // Score the untrained model too, so the plot and Listen have something from the start.
    prune(lab, &session, corpus, settings.threshold).await;
    Ok(session)
}

/// One training step, then the heatmap snapshot and evaluation when they are due.
async fn step(lab: &Lab, session: &mut LabSession, corpus: &LabCorpus, rate: &mut StepRate) {
    lab.stepping.set(true);
    let result = session.train_step(&corpus.train).await;
    lab.stepping.set(false);
    match result {
        Ok(event) => {
            if let TrainEvent::SkippedStep { step } = event {
                lab.notify(format!("step {step}: the loss was not finite; the step was skipped"));
            }
            lab.live.update(|v| v.add_event(&event));
        }
        Err(e) => {
            lab.playing.set(false);
            lab.notify(format!("training step failed: {e}"));
            return;
        }
    }
    let done = session.step();
    lab.step.set(done);
    lab.steps_per_second.set(rate.tick());
    if done % SNAPSHOT_EVERY == 0 || session.is_finished() {
        snapshot(lab, session).await;
    }
    if done % EVAL_EVERY == 0 && !session.is_finished() {
        prune(lab, session, corpus, lab.settings.get_untracked().threshold).await;
    }
}

/// Reads every unit's score and appends it to the live heatmaps.
async fn snapshot(lab: &Lab, session: &mut LabSession) {
    if let Err(e) = session.snapshot().await {
        lab.notify(format!("cannot read the gates: {e}"));
        return;
    }
    let trace = &session.trace;
    let Some(latest) = trace.snapshots.last() else { return };
    lab.live.update(|v| {
        v.description = trace.description.clone();
        v.sites = trace.sites.clone();
        v.steps = trace.steps.clone();
        v.snapshots.push(Arc::new(latest.clone()));
    });
}

/// Scores the model cut at `threshold` (and the uncut model when not yet known at this step).
async fn prune(lab: &Lab, session: &LabSession, corpus: &LabCorpus, threshold: f64) {
    let dense_is_stale = lab
        .trade_off
        .with_untracked(|t| t.dense.as_ref().is_none_or(|d| d.step != session.step()));
    if dense_is_stale {
        if let Some(dense) = evaluate(lab, session, corpus, 0.0, "scoring the unpruned model…").await {
            lab.trade_off.update(|t| {
                t.dense = Some(dense);
                t.sweep.clear();
            });
        }
    }
    let message = format!("pruning at {threshold:.2} and scoring it…");
    if let Some(point) = evaluate(lab, session, corpus, threshold, &message).await {
        lab.live.update(|v| v.wers.push((point.step, point.wer)));
        lab.trade_off.update(|t| t.current = Some(point));
    }
}

async fn sweep(lab: &Lab, session: &LabSession, corpus: &LabCorpus) {
    let thresholds = match session.sweep_thresholds().await {
        Ok(t) => t,
        Err(e) => return lab.notify(format!("cannot sweep: {e}")),
    };
    let mut points = Vec::with_capacity(thresholds.len());
    for t in thresholds {
        match evaluate(lab, session, corpus, t, &format!("sweep: threshold {t:.3}…")).await {
            Some(point) => points.push(point),
            None => break,
        }
        yield_to_browser().await;
    }
    lab.trade_off.update(|t| t.sweep = points);
}

/// Loads an export, scores it on the dev subset with its own feature statistics, and shows it:
/// a point on the plot, and heatmaps of which units survived (and the scale folded into each).
async fn open_export(lab: &Lab, device: &Device, corpus: &LabCorpus, name: &str, manifest: &str, weights: &[u8]) {
    lab.busy.set(Some(format!("loading {name}…")));
    yield_to_browser().await;
    let result = match load_export(manifest, weights, device, name) {
        Ok((manifest, model)) => {
            let frames = manifest.config.max_batch_frames;
            evaluate_decoders_async(&model, &[], &corpus.dev, &manifest.stats, frames, &[&Decoder::Greedy])
                .await
                .map(|mut reports| (manifest, reports.remove(0)))
        }
        Err(e) => Err(e.to_string()),
    };
    lab.busy.set(None);
    let (manifest, report) = match result {
        Ok(done) => done,
        Err(e) => return lab.notify(e),
    };
    let model = manifest.config.model.clone().with_block_shapes(None);
    let map = kept_map(&model, &manifest.keep);
    let mut trace = Trace::shaped_like(
        format!(
            "{} export · {} of {} parameters",
            manifest.method.name(),
            manifest.params.total(),
            manifest.dense_params.total()
        ),
        &map,
    );
    trace.record(0, &map);
    lab.frame.set(None);
    lab.opened.set(Some(TraceView::from_trace(trace, name.to_string())));
    lab.trade_off.update(|t| {
        t.opened = Some(PrunePoint {
            step: 0,
            threshold: f64::NAN,
            params: manifest.params.total(),
            flops_per_second: manifest.flops_per_second,
            wer: report.wer(),
            kept: kept_per_site(&model, &manifest.keep),
            transcripts: Vec::new(),
        })
    });
}

async fn evaluate(
    lab: &Lab,
    session: &LabSession,
    corpus: &LabCorpus,
    threshold: f64,
    message: &str,
) -> Option<PrunePoint> {
    lab.busy.set(Some(message.to_string()));
    yield_to_browser().await;
    let result = session.prune_and_score(threshold, &corpus.dev).await;
    lab.busy.set(None);
    result.map_err(|e| lab.notify(e)).ok()
}

/// Steps per second over the last few steps of uninterrupted training.
#[derive(Default)]
struct StepRate {
    last_ms: Option<f64>,
    recent: Vec<f64>,
}

impl StepRate {
    fn tick(&mut self) -> f64 {
        let now = now_ms();
        if let Some(last) = self.last_ms {
            self.recent.push(now - last);
            if self.recent.len() > 10 {
                self.recent.remove(0);
            }
        }
        self.last_ms = Some(now);
        let mean = self.recent.iter().sum::<f64>() / self.recent.len().max(1) as f64;
        if mean > 0.0 { 1000.0 / mean } else { 0.0 }
    }

    /// Training stopped: the next step must not count the pause.
    fn pause(&mut self) {
        self.last_ms = None;
    }
}
