//! A copy of the run in host memory, refreshed while it trains on WebGPU. A lost GPU takes its
//! buffers with it, so this copy is what the page carries the run on from on the CPU.

use leptos::prelude::*;

use crate::lab::{Kept, Lab};
use crate::timing::now_ms;
use prunelab_lab_state::session::{KeptRun, LabSession};

/// Least time between copies. Copies are spaced in time rather than steps, so losing the GPU
/// loses about this much training whatever a step costs.
const KEEP_EVERY_MS: f64 = 15_000.0;
/// Where copying is slow (a software GPU: a copy reads every parameter and both optimiser
/// moments back, 18 MB for `tiny`), the next copy waits this many times as long as the last
/// took, so copying never takes more than about 5 % of training time.
const WAIT_PER_COPY_TIME: f64 = 19.0;

/// The latest copy, and when the next is due.
#[derive(Default)]
pub(super) struct Keeper {
    kept: Option<KeptRun>,
    next_ms: Option<f64>,
}

impl Keeper {
    /// A new run: the copy of the old one is of no use.
    pub fn forget(&mut self, lab: &Lab) {
        *self = Self::default();
        lab.kept.set(None);
    }

    pub fn kept(&self) -> Option<&KeptRun> {
        self.kept.as_ref()
    }

    /// After a step on WebGPU: copies the run when a copy is due (the first step's always is).
    /// Runs on the CPU backend need none: nothing there can be lost.
    pub async fn after_step(&mut self, lab: &Lab, session: &LabSession) {
        if !lab.backend.get_untracked().is_some_and(|b| b.is_webgpu) {
            return;
        }
        if self.next_ms.is_some_and(|next| now_ms() < next) {
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
        match copied {
            Ok(kept) => {
                lab.kept.set(Some(Kept {
                    step: kept.step(),
                    millis,
                }));
                self.kept = Some(kept);
            }
            Err(e) => lab.notify(e),
        }
    }
}
