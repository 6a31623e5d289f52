//! The native clock for the engine's [`DevTimer`], and blocking wrappers of its timings.

use std::time::Instant;

use prunelab_engine::infer::{Clock, DevTimer, PairedTiming};
use prunelab_engine::model::Conformer;
use prunelab_engine::readback::block_on;

/// Seconds since the clock was made.
pub struct WallClock(Instant);

impl WallClock {
    pub fn start() -> Self {
        Self(Instant::now())
    }
}

impl Clock for WallClock {
    fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Median real-time factor of `model` (see [`DevTimer::real_time_factor`]).
pub fn real_time_factor(timer: &DevTimer, model: &Conformer, repeats: usize) -> Result<f64, String> {
    block_on(timer.real_time_factor(model, repeats, &WallClock::start()))
        .map_err(|e| format!("timing a pass over dev: {e}"))
}

/// Dense against pruned in alternating pairs (see [`DevTimer::paired`]).
pub fn paired(timer: &DevTimer, dense: &Conformer, pruned: &Conformer, repeats: usize) -> Result<PairedTiming, String> {
    block_on(timer.paired(dense, pruned, repeats, &WallClock::start()))
        .map_err(|e| format!("timing a pass over dev: {e}"))
}
