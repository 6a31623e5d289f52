//! Training: configuration, the learning-rate schedule, the CTC objective, one optimiser step
//! (`forward` → `readout` → `trainer`, or split over threads by `shards`), evaluation with any
//! decoder, what models hear in a recording, and [`Run`]: a whole run's schedule as events,
//! which front doors drive.

mod batch;
mod config;
mod distill;
mod error;
mod evaluate;
mod events;
mod flat_adam;
mod forward;
mod gating;
mod hear;
mod objective;
mod optimiser;
mod readout;
mod run;
mod schedule;
mod shards;
mod timing;
mod trainer;

pub use batch::{Prepared, StepBatch, prepare_batch};
pub use config::{OptimConfig, TrainConfig, limit};
pub use distill::{DistillConfig, LayerMaps, valid_frames};
pub use error::TrainError;
pub use evaluate::{EvalReport, UtteranceResult, evaluate, summarise};
pub use events::TrainEvent;
pub use flat_adam::{FlatAdam, FlatAdamConfig, FlatStateError};
pub use gating::{block_masks, gate_layout};
pub use hear::{HearError, MAX_RECORDING_SECONDS, MIN_RECORDING_SECONDS, recording, transcribe};
pub use objective::{ctc_loss, ctc_min_frames};
pub use run::{CutEval, Run, RunEvent, RunOptions};
pub use schedule::learning_rate;
pub use timing::{Clock, DevTimer, PairedTiming};
pub use trainer::{Trainer, TrainerState, load_model};
