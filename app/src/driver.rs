//! The loop that owns the training session: it takes widgets' commands, trains while playing,
//! and copies what changed into the page's signals. One loop, so the session is never used by
//! two tasks at once; it yields to the browser after every piece of work.

use std::rc::Rc;

use leptos::prelude::*;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::decode::Decoder;
use prunelab_engine::prune::{CutSource, CutTarget, kept_map, kept_per_site};
use prunelab_engine::store::{Trace, load_export};
use prunelab_engine::train::{RunEvent, TrainEvent, TrainerState, evaluate};

use crate::compare::Comparison;
use crate::corpus::LabCorpus;
use crate::lab::{Command, CompareView, Lab, MethodView, TraceView};
use crate::session::{Cut, LabData, LabSession, PrunePoint};
use crate::timing::{BrowserClock, now_ms, sleep, yield_to_browser};

/// Runs until the page closes.
pub async fn drive(lab: Lab, device: Device, corpus: Rc<LabCorpus>, trained: Option<Rc<TrainerState>>) {
    let assets = Assets {
        corpus: &corpus,
        trained: trained.as_deref(),
    };
    let mut experiment = match start(&lab, &device, assets, lab.settings.get_untracked()).await {
        Ok(experiment) => experiment,
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
                    Ok(fresh) => experiment = fresh,
                    Err(e) => lab.notify(format!("cannot reset: {e}")),
                }
                rate = StepRate::default();
            }
            Some(Command::Step) => {
                lab.playing.set(false);
                advance(&lab, &mut experiment, &mut rate, &corpus).await;
            }
            Some(Command::Prune(knob)) => {
                if let Experiment::Single(session) = &mut experiment {
                    session.set_knob(knob);
                    prune(&lab, session, knob).await;
                }
            }
            Some(Command::Sweep) => {
                if let Experiment::Single(session) = &experiment {
                    sweep(&lab, session).await;
                }
            }
            Some(Command::Target(target)) => {
                if let Experiment::Single(session) = &experiment {
                    cut_to_target(&lab, session, target).await;
                }
            }
            Some(Command::Hear { samples, sample_rate }) => match &experiment {
                Experiment::Single(session) => hear(&lab, session, &samples, sample_rate).await,
                Experiment::Compare(_) => lab.notify("return to one run to speak to the model".into()),
            },
            Some(Command::OpenExport {
                name,
                manifest,
                weights,
            }) => {
                open_export(&lab, &device, &corpus, &name, &manifest, &weights).await;
            }
            None if lab.playing.get_untracked() && !experiment.is_finished() => {
                advance(&lab, &mut experiment, &mut rate, &corpus).await;
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

/// What the page runs: one run, or methods side by side.
enum Experiment {
    Single(LabSession),
    Compare(Comparison),
}

impl Experiment {
    fn is_finished(&self) -> bool {
        match self {
            Experiment::Single(session) => session.is_finished(),
            Experiment::Compare(comparison) => comparison.is_finished(),
        }
    }
}

/// One training step (of the method furthest behind, in a comparison); when that was the
/// last, stops playing and scores the result.
async fn advance(lab: &Lab, experiment: &mut Experiment, rate: &mut StepRate, corpus: &LabCorpus) {
    if experiment.is_finished() {
        return;
    }
    match experiment {
        Experiment::Single(session) => step(lab, session, rate, corpus).await,
        Experiment::Compare(comparison) => compare_step(lab, comparison, rate, corpus).await,
    }
    if experiment.is_finished() {
        lab.playing.set(false);
        match experiment {
            Experiment::Single(session) => prune(lab, session, lab.settings.get_untracked().threshold).await,
            Experiment::Compare(comparison) => finish_comparison(lab, comparison).await,
        }
    }
}

/// What sessions are made from.
#[derive(Clone, Copy)]
struct Assets<'a> {
    corpus: &'a LabCorpus,
    /// The trained start, if it loaded.
    trained: Option<&'a TrainerState>,
}

/// A fresh experiment: clears the views, then starts one run or a comparison as `settings` say.
async fn start(
    lab: &Lab,
    device: &Device,
    assets: Assets<'_>,
    settings: crate::settings::LabSettings,
) -> Result<Experiment, String> {
    lab.busy.set(Some("building the model…".into()));
    yield_to_browser().await;
    let data = LabData {
        train: &assets.corpus.train,
        dev: &assets.corpus.dev[..settings.dev_utterances.min(assets.corpus.dev.len())],
        trained: assets.trained,
    };
    let decoder = Some(assets.corpus.lexicon.clone());
    let started = if settings.compare.is_empty() {
        LabSession::new(&settings, data, decoder, device).map(Experiment::Single)
    } else {
        Comparison::new(&settings, data, decoder, device).map(Experiment::Compare)
    };
    let mut experiment = started.inspect_err(|_| lab.busy.set(None))?;
    lab.settings.set(settings.clone());
    lab.step.set(0);
    lab.steps_per_second.set(0.0);
    lab.frame.set(None);
    lab.trade_off.set(Default::default());
    lab.compare.set(None);
    lab.live.set(TraceView {
        source: "live".into(),
        ..TraceView::default()
    });
    match &mut experiment {
        Experiment::Single(session) => {
            let first = session.begin().await;
            lab.busy.set(None);
            show_events(lab, session, first?);
            // Score the starting model too, so the plot and Listen have something from the start
            // (and the page can say what the trained model scores before any training).
            prune(lab, session, settings.threshold).await;
        }
        Experiment::Compare(comparison) => {
            lab.busy.set(Some("scoring the start…".into()));
            yield_to_browser().await;
            let begun = comparison.begin().await;
            lab.busy.set(None);
            let (first, start) = begun?;
            lab.compare.set(Some(CompareView {
                methods: comparison
                    .sessions()
                    .iter()
                    .map(|session| MethodView {
                        method: session.method(),
                        step: 0,
                        trace: TraceView::default(),
                        result: None,
                    })
                    .collect(),
                steps: settings.steps,
                budget: comparison.budget(),
                start: Some(start),
            }));
            for (index, events) in first {
                show_method_events(lab, comparison, index, events);
            }
            // A comparison link plays at once: it is a demonstration to watch. Embedded, it
            // waits for its Play button like any embedded run.
            lab.playing.set(!settings.embed);
        }
    }
    Ok(experiment)
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
            RunEvent::Snapshot { .. } => lab.live.update(|v| v.add_latest_snapshot(&session.trace)),
            RunEvent::Eval(eval) => {
                let point = PrunePoint::from(*eval);
                lab.live.update(|v| v.wers.push((point.step, point.wer)));
                lab.trade_off.update(|t| t.current = Some(point));
            }
            RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => {}
        }
    }
}

/// Copies the events of a comparison's session `index` into its view.
fn show_method_events(lab: &Lab, comparison: &Comparison, index: usize, events: Vec<RunEvent>) {
    let session = &comparison.sessions()[index];
    let name = session.method().name();
    for event in events {
        if let RunEvent::Trained(TrainEvent::SkippedStep { step }) = event {
            lab.notify(format!(
                "{name}, step {step}: the loss was not finite; the step was skipped"
            ));
        }
        lab.compare.update(|c| {
            let Some(view) = c.as_mut().and_then(|c| c.methods.get_mut(index)) else {
                return;
            };
            view.step = session.step();
            match &event {
                RunEvent::Trained(trained) => view.trace.add_event(trained),
                RunEvent::Snapshot { .. } => view.trace.add_latest_snapshot(&session.trace),
                RunEvent::Eval(eval) => view.trace.wers.push((eval.step, eval.best_report().wer())),
                RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => {}
            }
        });
    }
}

/// One step of the comparison's method furthest behind.
async fn compare_step(lab: &Lab, comparison: &mut Comparison, rate: &mut StepRate, corpus: &LabCorpus) {
    lab.stepping.set(true);
    let result = comparison.step(&corpus.train).await;
    lab.stepping.set(false);
    match result {
        Ok(Some((index, events))) => {
            show_method_events(lab, comparison, index, events);
            // Every method has trained at least this many steps.
            let done = comparison.sessions().iter().map(LabSession::step).min().unwrap_or(0);
            lab.step.set(done);
            lab.steps_per_second.set(rate.tick());
        }
        Ok(None) => {}
        Err(e) => {
            lab.playing.set(false);
            lab.notify(format!("training step failed: {e}"));
        }
    }
}

/// Each method cut to the budget, scored, timed and swept, shown as each finishes.
async fn finish_comparison(lab: &Lab, comparison: &Comparison) {
    for (index, session) in comparison.sessions().iter().enumerate() {
        lab.busy.set(Some(format!(
            "{}: cutting to {}, scoring, timing and sweeping…",
            session.method().name(),
            comparison.budget()
        )));
        yield_to_browser().await;
        match comparison.result(index, &BrowserClock).await {
            Ok(result) => lab.compare.update(|c| {
                if let Some(view) = c.as_mut().and_then(|c| c.methods.get_mut(index)) {
                    view.result = Some(result);
                }
            }),
            Err(e) => lab.notify(e),
        }
    }
    lab.busy.set(None);
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
        show_and_time(lab, session, &source, point).await;
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
        Ok(point) => show_and_time(lab, session, &source, point).await,
        Err(e) => lab.notify(e),
    }
}

/// Shows `point` as the current cut, then times it beside the dense model (so "smaller" is
/// seen to mean "faster") and adds the timing, unless another cut replaced it meanwhile.
async fn show_and_time(lab: &Lab, session: &LabSession, source: &CutSource, mut point: PrunePoint) {
    lab.trade_off.update(|t| t.current = Some(point.clone()));
    let Some(cut) = point.cut else { return };
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

/// What the dense and the current cut model hear in a recording (the slider's cut when
/// nothing has been cut yet).
async fn hear(lab: &Lab, session: &LabSession, samples: &[f32], sample_rate: u32) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    let threshold = lab.settings.with_untracked(|s| s.threshold);
    let cut = lab
        .trade_off
        .with_untracked(|t| t.current.as_ref().and_then(|p| p.cut))
        .unwrap_or(Cut::Knob(threshold));
    lab.busy.set(Some("listening to the recording…".into()));
    yield_to_browser().await;
    let heard = session.hear(&source, cut, samples, sample_rate).await;
    lab.busy.set(None);
    match heard {
        Ok(heard) => lab.heard.set(Some(heard)),
        Err(e) => lab.notify(format!("cannot transcribe the recording: {e}")),
    }
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
            cut: None,
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
