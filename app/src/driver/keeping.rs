//! A copy of the run in host memory, refreshed while it trains, and kept in the browser's storage
//! too. A lost GPU takes its buffers with it, so the copy in memory is what the page carries the
//! run on from on the CPU; the stored copy is what a reload carries on from.

use leptos::prelude::*;

use crate::browser_cache::BrowserCache;
use crate::lab::{Kept, Lab};
use crate::timing::now_ms;
use prunelab_lab_state::saved_run::SavedRun;
use prunelab_lab_state::session::{KeptRun, LabSession};
use prunelab_lab_state::settings::LabSettings;

/// Least time between copies. Copies are spaced in time rather than steps, so losing the GPU
/// (or reloading) loses about this much training whatever a step costs; a snapshot (every 5
/// steps by default) also makes a copy due, so a reload finds the heatmaps as they were.
const KEEP_EVERY_MS: f64 = 15_000.0;
/// Where copying is slow (a software GPU: a copy reads every parameter and both optimiser
/// moments back, 18 MB for `tiny`), the next copy waits this many times as long as the last
/// took, so copying never takes more than about 5 % of training time.
const WAIT_PER_COPY_TIME: f64 = 19.0;

/// Where the run is kept across reloads: one run, replaced by each new copy.
pub(super) const SAVED_RUNS: BrowserCache = BrowserCache("prunelab-saved-run-v1");
pub(super) const SAVED_RUN_KEY: &str = "saved-run.plsaved";

/// The latest copy, and when the next is due.
#[derive(Default)]
pub(super) struct Keeper {
    kept: Option<KeptRun>,
    next_ms: Option<f64>,
    /// The settings of the run being kept, when it is kept across reloads too.
    saving: Option<LabSettings>,
    /// The storage refused a copy of this run (said once; later copies still try).
    refused: bool,
}

impl Keeper {
    /// A new run: the copy of the old one is of no use. `saving` holds its settings when the
    /// run is to survive a reload (a single run from the shipped start or from scratch: a run
    /// from the user's own checkpoint could not find its start again after a reload).
    pub fn forget(&mut self, lab: &Lab, saving: Option<LabSettings>) {
        *self = Self {
            saving,
            ..Self::default()
        };
        lab.kept.set(None);
    }

    pub fn kept(&self) -> Option<&KeptRun> {
        self.kept.as_ref()
    }

    /// After a step: copies the run when a copy is due (the first step's always is, and a
    /// snapshot's), then keeps it in the browser's storage.
    pub async fn after_step(&mut self, lab: &Lab, session: &LabSession) {
        let snapshot_now = session.trace.steps.last() == Some(&session.step());
        if self.next_ms.is_some_and(|next| now_ms() < next) && !snapshot_now {
            return;
        }
        // The copy's own cost decides when the next is due; the step's queued update, which the
        // copy would otherwise wait for, is not part of it (the next step would wait for it too).
        let (copied, millis) = match session.settle().await {
            Ok(()) => {
                let started = now_ms();
                let copied = session.keep().await;
                (copied, now_ms() - started)
            }
            Err(e) => (Err(e), 0.0),
        };
        let finished = now_ms();
        // A failed copy waits like a slow one: retried every step, it would stall training.
        self.next_ms = Some(finished + KEEP_EVERY_MS.max(WAIT_PER_COPY_TIME * millis));
        let kept = match copied {
            Ok(kept) => kept,
            Err(e) => return lab.notify(e),
        };
        lab.kept.set(Some(Kept {
            step: kept.step(),
            millis,
            stored: false,
        }));
        if let Some(settings) = &self.saving {
            let saved = SavedRun {
                kept: kept.clone(),
                settings: settings.clone(),
            };
            match SAVED_RUNS.put(SAVED_RUN_KEY, &saved.encode()).await {
                Ok(()) => {
                    // A run kept earlier is replaced now: no longer offer to continue it.
                    lab.saved.set(None);
                    lab.kept.update(|k| {
                        if let Some(k) = k {
                            k.stored = true;
                        }
                    });
                }
                Err(e) if !self.refused => {
                    self.refused = true;
                    lab.notify(format!(
                        "cannot keep the run in this browser's storage ({e}): training goes on, but a reload will start over"
                    ));
                }
                Err(_) => {}
            }
        }
        self.kept = Some(kept);
    }
}
