//! The loop that owns the training session: it takes widgets' commands, trains while playing,
//! and copies what changed into the page's signals. One loop, so the session is never used by
//! two tasks at once; it yields to the browser after every piece of work.

use std::rc::Rc;
use std::sync::Arc;

use leptos::prelude::*;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::decode::Decoder;
use prunelab_engine::prune::{CutSource, CutTarget, kept_map, kept_per_site};
use prunelab_engine::store::{Trace, load_export};
use prunelab_engine::train::{RunEvent, TrainEvent, TrainerState, evaluate};

use crate::corpus::LabCorpus;
use crate::lab::{Command, Lab, TraceView};
use crate::session::{Cut, LabData, LabSession, PrunePoint};
use crate::timing::{BrowserClock, now_ms, sleep, yield_to_browser};

/// Runs until the page closes.
pub async fn drive(lab: Lab, device: Device, corpus: Rc<LabCorpus>, trained: Option<Rc<TrainerState>>) {
    let assets = Assets {
        corpus: &corpus,
        trained: trained.as_deref(),
    };
    let mut session = match start(&lab, &device, assets, lab.settings.get_untracked()).await {
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
                match start(&lab, &device, assets, settings).await {
                    Ok(fresh) => session = fresh,
                    Err(e) => lab.notify(format!("cannot reset: {e}")),
                }
                rate = StepRate::default();
            }
            Some(Command::Step) => {
                lab.playing.set(false);
                step(&lab, &mut session, &mut rate, &corpus).await;
            }
            Some(Command::Prune(knob)) => {
                session.set_knob(knob);
                prune(&lab, &session, knob).await;
            }
            Some(Command::Sweep) => sweep(&lab, &session).await,
            Some(Command::Target(target)) => cut_to_target(&lab, &session, target).await,
            Some(Command::OpenExport {
                name,
                manifest,
                weights,
            }) => {
                open_export(&lab, &device, &corpus, &name, &manifest, &weights).await;
            }
            None if lab.playing.get_untracked() && !session.is_finished() => {
                step(&lab, &mut session, &mut rate, &corpus).await;
                if session.is_finished() {
                    lab.playing.set(false);
                    prune(&lab, &session, lab.settings.get_untracked().threshold).await;
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

/// What sessions are made from.
#[derive(Clone, Copy)]
struct Assets<'a> {
    corpus: &'a LabCorpus,
    /// The trained start, if it loaded.
    trained: Option<&'a TrainerState>,
}

/// A fresh session: clears the views, takes the first snapshot and scores the model it starts
/// from (trained, or random weights).
async fn start(
    lab: &Lab,
    device: &Device,
    assets: Assets<'_>,
    settings: crate::settings::LabSettings,
) -> Result<LabSession, String> {
    lab.busy.set(Some("building the model…".into()));
    yield_to_browser().await;
    let data = LabData {
        train: &assets.corpus.train,
        dev: &assets.corpus.dev[..settings.dev_utterances.min(assets.corpus.dev.len())],
        trained: assets.trained,
    };
    let decoder = Some(assets.corpus.lexicon.clone());
    let mut session = LabSession::new(&settings, data, decoder, device).inspect_err(|_| lab.busy.set(None))?;
    lab.settings.set(settings.clone());
    lab.step.set(0);
    lab.steps_per_second.set(0.0);
    lab.frame.set(None);
    lab.trade_off.set(Default::default());
    lab.live.set(TraceView {
        source: "live".into(),
        ..TraceView::default()
    });
    let first = session.begin().await;
    lab.busy.set(None);
    show_events(lab, &session, first?);
    // Score the starting model too, so the plot and Listen have something from the start (and
    // the page can say what the trained model scores before any training).
    prune(lab, &session, settings.threshold).await;
    Ok(session)
}

/// One training step and what the run's schedule made due after it (snapshot, evaluation).
async fn step(lab: &Lab, session: &mut LabSession, rate: &mut StepRate, corpus: &LabCorpus) {
    lab.stepping.set(true);
    let result = session.train_step(&corpus.train).await;
    lab.stepping.set(false);
    let events = match result {
        Ok(events) => events,
        Err(e) => {
            lab.playing.set(false);
            lab.notify(format!("training step failed: {e}"));
            return;
        }
    };
    let evaluated = events.iter().any(|e| matches!(e, RunEvent::Eval(_)));
    show_events(lab, session, events);
    lab.step.set(session.step());
    lab.steps_per_second.set(rate.tick());
    if evaluated && let Some(source) = read_scores(lab, session).await {
        refresh_uncut(lab, session, &source).await;
    }
}

/// Copies a run's events into the page's signals.
fn show_events(lab: &Lab, session: &LabSession, events: Vec<RunEvent>) {
    for event in events {
        match event {
            RunEvent::Trained(trained) => {
                if let TrainEvent::SkippedStep { step } = trained {
                    lab.notify(format!("step {step}: the loss was not finite; the step was skipped"));
                }
                lab.live.update(|v| v.add_event(&trained));
            }
            RunEvent::Snapshot { .. } => {
                let trace = &session.trace;
                let Some(latest) = trace.snapshots.last() else { continue };
                lab.live.update(|v| {
                    v.description = trace.description.clone();
                    v.sites = trace.sites.clone();
                    v.steps = trace.steps.clone();
                    v.snapshots.push(Arc::new(latest.clone()));
                });
            }
            RunEvent::Eval(eval) => {
                let point = PrunePoint::from(*eval);
                lab.live.update(|v| v.wers.push((point.step, point.wer)));
                lab.trade_off.update(|t| t.current = Some(point));
            }
            RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => {}
        }
    }
}

/// Scores the model cut at slider value `knob` (and the uncut reference when not yet known at
/// this step), from one read of the scores.
async fn prune(lab: &Lab, session: &LabSession, knob: f64) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    refresh_uncut(lab, session, &source).await;
    let message = format!("pruning at {knob:.2} and scoring it…");
    if let Some(point) = evaluate_cut(lab, session, &source, knob, &message).await {
        lab.live.update(|v| v.wers.push((point.step, point.wer)));
        show_and_time(lab, session, &source, Cut::Knob(knob), point).await;
    }
}

/// The cut that meets a typed target, scored, timed and shown as the current cut.
async fn cut_to_target(lab: &Lab, session: &LabSession, target: CutTarget) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    refresh_uncut(lab, session, &source).await;
    lab.busy.set(Some(format!("cutting to {target} and scoring it…")));
    yield_to_browser().await;
    let scored = session.score_target(&source, target).await;
    lab.busy.set(None);
    match scored {
        Ok(point) => show_and_time(lab, session, &source, Cut::Target(target), point).await,
        Err(e) => lab.notify(e),
    }
}

/// Shows `point` as the current cut, then times it beside the dense model (so "smaller" is
/// seen to mean "faster") and adds the timing, unless another cut replaced it meanwhile.
async fn show_and_time(lab: &Lab, session: &LabSession, source: &CutSource, cut: Cut, mut point: PrunePoint) {
    lab.trade_off.update(|t| t.current = Some(point.clone()));
    lab.busy.set(Some("timing the dense and the cut model…".into()));
    yield_to_browser().await;
    let timed = session.time_cut(source, cut, &BrowserClock).await;
    lab.busy.set(None);
    match timed {
        Ok(timing) => {
            // The same cut: a target's knob is NaN, which equals nothing, so compare its bits.
            let key = (point.step, point.params, point.knob.to_bits());
            let same = move |c: &PrunePoint| (c.step, c.params, c.knob.to_bits()) == key;
            point.timing = timing;
            lab.trade_off.update(|t| {
                if t.current.as_ref().is_some_and(same) {
                    t.current = Some(point);
                }
            });
        }
        Err(e) => lab.notify(e),
    }
}

/// The reference point of the plot: the slider at 0 (nothing cut beyond the method's own rule),
/// scored once per step.
async fn refresh_uncut(lab: &Lab, session: &LabSession, source: &CutSource) {
    let stale = lab
        .trade_off
        .with_untracked(|t| t.dense.as_ref().is_none_or(|d| d.step != session.step()));
    if !stale {
        return;
    }
    if let Some(uncut) = evaluate_cut(lab, session, source, 0.0, "scoring the uncut model…").await {
        lab.trade_off.update(|t| {
            if uncut.step == 0 {
                t.start = Some(uncut.clone());
            }
            t.dense = Some(uncut);
            t.sweep.clear();
        });
    }
}

/// Scores nine cuts spanning model sizes (`CutSource::sweep_values`), from one read of the scores.
async fn sweep(lab: &Lab, session: &LabSession) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    let values = source.sweep_values();
    let mut points = Vec::with_capacity(values.len());
    for v in values {
        match evaluate_cut(lab, session, &source, v, &format!("sweep: {v:.3}…")).await {
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
            evaluate(
                &model,
                &[],
                &corpus.dev,
                &manifest.stats,
                frames,
                &[&Decoder::Greedy, &corpus.lexicon],
            )
            .await
            .map(|mut reports| (manifest, reports.remove(0), reports.remove(0)))
            .map_err(|e| e.to_string())
        }
        Err(e) => Err(e.to_string()),
    };
    lab.busy.set(None);
    let (manifest, greedy, report) = match result {
        Ok(done) => done,
        Err(e) => return lab.notify(e),
    };
    let model = manifest.config.model.clone().with_block_shapes(None);
    let map = kept_map(&model, &manifest.keep);
    let opened_map = map.clone();
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
            knob: f64::NAN,
            params: manifest.params.total(),
            dense_params: manifest.dense_params.total(),
            flops_per_second: manifest.flops_per_second,
            wer: report.wer(),
            greedy_wer: greedy.wer(),
            timing: None,
            words: report.words.reference_len,
            kept: kept_per_site(&model, &manifest.keep),
            kept_map: opened_map,
            transcripts: Vec::new(),
        })
    });
}

/// The current model's unit scores (one read-back), or `None` with a notice.
async fn read_scores(lab: &Lab, session: &LabSession) -> Option<CutSource> {
    session.scores().await.map_err(|e| lab.notify(e)).ok()
}

/// `source` cut at `knob` and scored, with a busy message while it runs.
async fn evaluate_cut(
    lab: &Lab,
    session: &LabSession,
    source: &CutSource,
    knob: f64,
    message: &str,
) -> Option<PrunePoint> {
    lab.busy.set(Some(message.to_string()));
    yield_to_browser().await;
    let result = session.score(source, knob).await;
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
