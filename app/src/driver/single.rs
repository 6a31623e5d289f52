//! Driving one run: its start, its steps, and the cuts widgets ask for (slider, sweep, typed
//! target), each scored, and the slider's timed; a recording heard; an export opened.

use leptos::prelude::*;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::decode::Decoder;
use prunelab_engine::infer::evaluate;
use prunelab_engine::prune::{CutSource, CutTarget, kept_map, kept_per_site, prunable_sparsity};
use prunelab_engine::store::{Trace, encode_trace, load_export};
use prunelab_engine::train::{RunEvent, TrainEvent};

use super::{StepRate, read_scores};
use crate::corpus::LabCorpus;
use crate::lab::{Lab, TraceView};
use crate::timing::{BrowserClock, yield_to_browser};
use prunelab_lab_state::session::{Cut, LabSession, PrunePoint};
use prunelab_lab_state::settings::LabSettings;

/// Takes the first snapshot, scores the model the run starts from by its weights alone (so the
/// page can say what the trained model scores before any training), and the slider's cut (so
/// the plot and Listen have something from the start).
pub(super) async fn begin(lab: &Lab, session: &mut LabSession, settings: &LabSettings) -> Result<(), String> {
    let first = session.begin().await;
    show_events(lab, session, first?);
    lab.busy.set(Some("scoring the start…".into()));
    yield_to_browser().await;
    let start = session.score_unscaled().await;
    lab.busy.set(None);
    match start {
        Ok(start) => lab.trade_off.update(|t| t.start = Some(start)),
        Err(e) => lab.notify(e),
    }
    prune(lab, session, settings.threshold).await;
    Ok(())
}

/// Shows a run carried on from its copy in memory as it was at the copy's step: its trace
/// (curves, heatmaps) up to there, and the slider's cut of its model, scored. The start's
/// score is kept: it is still the same run.
pub(super) async fn resume(lab: &Lab, session: &mut LabSession) {
    lab.step.set(session.step());
    lab.steps_per_second.set(0.0);
    lab.frame.set(None);
    lab.heard.set(None);
    lab.live
        .set(TraceView::from_trace(session.trace.clone(), "live".into()));
    lab.trade_off.update(|t| {
        t.dense = None;
        t.current = None;
        t.sweep.clear();
    });
    prune(lab, session, lab.settings.get_untracked().threshold).await;
}

/// One training step and what the run's schedule made due after it (snapshot, evaluation).
/// Whether the step was taken.
pub(super) async fn step(lab: &Lab, session: &mut LabSession, rate: &mut StepRate, corpus: &LabCorpus) -> bool {
    lab.stepping.set(true);
    let result = session.train_step(&corpus.train).await;
    lab.stepping.set(false);
    let events = match result {
        Ok(events) => events,
        Err(e) => {
            lab.playing.set(false);
            lab.notify(format!("training step failed: {e}"));
            return false;
        }
    };
    let evaluated = events.iter().any(|e| matches!(e, RunEvent::Eval(_)));
    show_events(lab, session, events);
    lab.step.set(session.step());
    lab.steps_per_second.set(rate.tick());
    if evaluated && let Some(source) = read_scores(lab, session).await {
        refresh_uncut(lab, session, &source).await;
    }
    true
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

/// Scores the model cut at slider value `knob` (and the uncut reference when not yet known at
/// this step), from one read of the scores.
pub(super) async fn prune(lab: &Lab, session: &LabSession, knob: f64) {
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
pub(super) async fn cut_to_target(lab: &Lab, session: &LabSession, target: CutTarget) {
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
            t.dense = Some(uncut);
            t.sweep.clear();
        });
    }
}

/// Scores nine cuts spanning model sizes (`CutSource::sweep_values`), from one read of the scores.
pub(super) async fn sweep(lab: &Lab, session: &LabSession) {
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
pub(super) async fn hear(lab: &Lab, session: &LabSession, samples: &[f32], sample_rate: u32) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    let cut = shown_cut(lab);
    lab.busy.set(Some("listening to the recording…".into()));
    yield_to_browser().await;
    let heard = session.hear(&source, cut, samples, sample_rate).await;
    lab.busy.set(None);
    match heard {
        Ok(heard) => lab.heard.set(Some(heard)),
        Err(e) => lab.notify(format!("cannot transcribe the recording: {e}")),
    }
}

/// The cut the page shows (the slider's, when none is shown yet).
fn shown_cut(lab: &Lab) -> Cut {
    let threshold = lab.settings.with_untracked(|s| s.threshold);
    lab.trade_off
        .with_untracked(|t| t.current.as_ref().and_then(|p| p.cut))
        .unwrap_or(Cut::Knob(threshold))
}

/// Offers the model cut as the page shows it as `prunelab prune`'s export (manifest and
/// weights in a folder) in one tar archive, named after the method, step and size.
pub(super) async fn download_model(lab: &Lab, session: &LabSession) {
    let Some(source) = read_scores(lab, session).await else {
        return;
    };
    lab.busy.set(Some("writing the model…".into()));
    yield_to_browser().await;
    let modified = (web_sys::js_sys::Date::now() / 1000.0) as u64;
    let saved = session
        .export(&source, shown_cut(lab), modified)
        .and_then(|(name, bytes)| crate::download::offer_download(&name, &bytes).map(|()| name));
    lab.busy.set(None);
    match saved {
        Ok(name) => lab.notify(format!(
            "saved {name}: prunelab eval and Open a run read it as it is; `tar xf {name}` gives the folder python/prunelab_torch reads"
        )),
        Err(e) => lab.notify(format!("cannot download the model: {e}")),
    }
}

/// Offers the live run's trace as a file named after its method and step; the lab (or
/// `prunelab compare`'s plots) opens it again.
pub(super) fn save_trace(lab: &Lab, session: &LabSession) {
    let name = format!("prunelab-{}-step{}.pltrace", session.method().name(), session.step());
    match crate::download::offer_download(&name, &encode_trace(&session.trace)) {
        Ok(()) => lab.notify(format!("saved {name}")),
        Err(e) => lab.notify(format!("cannot save the trace: {e}")),
    }
}

/// Loads an export, scores it on the dev subset with its own feature statistics, and shows it:
/// a point on the plot, and heatmaps of which units survived (and the scale folded into each).
pub(super) async fn open_export(
    lab: &Lab,
    device: &Device,
    corpus: &LabCorpus,
    name: &str,
    manifest: &str,
    weights: &[u8],
) {
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
            prunable_sparsity: Some(prunable_sparsity(&model, &manifest.keep)),
            kept_map: opened_map,
            transcripts: Vec::new(),
            cut: None,
            chosen_by_norm: false,
        })
    });
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
