//! Driving a comparison: its start, one step at a time of the method furthest behind, and the
//! results at the end, copied into the comparison's view.

use leptos::prelude::*;
use prunelab_engine::train::{RunEvent, TrainEvent};

use super::StepRate;
use crate::corpus::LabCorpus;
use crate::lab::{CompareView, Lab, MethodView, TraceView};
use crate::timing::{BrowserClock, yield_to_browser};
use prunelab_lab_state::compare::Comparison;
use prunelab_lab_state::session::LabSession;
use prunelab_lab_state::settings::LabSettings;

/// Scores the start (and sweeps the one-shot curves), shows the comparison, and plays it
/// unless embedded.
pub(super) async fn begin(lab: &Lab, comparison: &mut Comparison, settings: &LabSettings) -> Result<(), String> {
    lab.busy.set(Some("scoring the start…".into()));
    yield_to_browser().await;
    let begun = comparison.begin().await;
    lab.busy.set(None);
    let (first, start, problem) = begun?;
    if let Some(problem) = problem {
        lab.notify(problem);
    }
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
        show_events(lab, comparison, index, events);
    }
    // A comparison link plays at once: it is a demonstration to watch. Embedded, it waits for
    // its Play button like any embedded run (and a press of it is never undone here).
    if !settings.embed {
        lab.playing.set(true);
    }
    Ok(())
}

/// Copies the events of the comparison's session `index` into its view, in one update.
fn show_events(lab: &Lab, comparison: &Comparison, index: usize, events: Vec<RunEvent>) {
    let session = &comparison.sessions()[index];
    for event in &events {
        if let RunEvent::Trained(TrainEvent::SkippedStep { step }) = event {
            let name = session.method().name();
            lab.notify(format!(
                "{name}, step {step}: the loss was not finite; the step was skipped"
            ));
        }
    }
    lab.compare.update(|c| {
        let Some(view) = c.as_mut().and_then(|c| c.methods.get_mut(index)) else {
            return;
        };
        view.step = session.step();
        for event in &events {
            match event {
                RunEvent::Trained(trained) => view.trace.add_event(trained),
                RunEvent::Snapshot { .. } => view.trace.add_latest_snapshot(&session.trace),
                RunEvent::Eval(eval) => view.trace.wers.push((eval.step, eval.best_report().wer())),
                RunEvent::Cut { .. } | RunEvent::CheckpointDue { .. } => {}
            }
        }
    });
}

/// One step of the comparison's method furthest behind.
pub(super) async fn step(lab: &Lab, comparison: &mut Comparison, rate: &mut StepRate, corpus: &LabCorpus) {
    lab.stepping.set(true);
    let result = comparison.step(&corpus.train).await;
    lab.stepping.set(false);
    match result {
        Ok(Some((index, events))) => {
            show_events(lab, comparison, index, events);
            // Every method has trained at least this many steps.
            let done = comparison.sessions().iter().map(LabSession::step).min().unwrap_or(0);
            lab.step.set(done);
            lab.steps_per_second
                .set(rate.tick() / comparison.sessions().len() as f64);
        }
        Ok(None) => {}
        Err(e) => {
            lab.playing.set(false);
            lab.notify(format!("training step failed: {e}"));
        }
    }
}

/// Each method cut to the budget, scored, timed and swept, shown as each finishes (a failure
/// is shown in its place). A reset waiting in the queue stops it between methods.
pub(super) async fn finish(lab: &Lab, comparison: &Comparison) {
    for (index, session) in comparison.sessions().iter().enumerate() {
        if lab.reset_pending() {
            break;
        }
        lab.busy.set(Some(format!(
            "{}: cutting to {}, scoring, timing and sweeping…",
            session.method().name(),
            comparison.budget()
        )));
        yield_to_browser().await;
        let result = comparison.result(index, &BrowserClock).await;
        if let Err(e) = &result {
            lab.notify(e.clone());
        }
        lab.compare.update(|c| {
            if let Some(view) = c.as_mut().and_then(|c| c.methods.get_mut(index)) {
                view.result = Some(result);
            }
        });
    }
    lab.busy.set(None);
}
