//! Training: configuration, the CTC objective, one optimiser step (`trainer`, with its forward
//! pass and readout in `forward`, or split over threads by `shards`), a run's saved state
//! (`state`), and [`Run`]: a whole run's schedule as events, which front doors drive.
//! `recorded_pass` records the step's pass once and times its replays against it.
//!
//! The optimiser and schedule are in `optim`; evaluation, timing and what a model hears are in
//! `infer`.

mod batch;
mod config;
mod distill;
mod error;
mod events;
mod forward;
mod gating;
mod objective;
mod recorded_pass;
mod run;
mod shards;
mod state;
mod step_memory;
mod trainer;

pub use batch::StepBatch;
pub use config::{TrainConfig, limit};
pub use distill::{DistillConfig, LayerMaps, valid_frames};
pub use error::TrainError;
pub use events::TrainEvent;
pub use gating::{block_masks, gate_layout};
pub use objective::{BatchCtc, ctc_loss, ctc_min_frames};
pub use recorded_pass::{RecordedPassBench, TimedPass, bench_recorded_pass};
pub use run::{CutEval, Run, RunEvent, RunOptions};
pub use state::{TrainerState, load_gates, load_model};
pub use step_memory::{LargestTensor, largest_step_tensor, most_batch_frames};
pub use trainer::Trainer;
