//! Training: configuration, the learning-rate schedule, the CTC objective, one optimiser step
//! (`forward` → `readout` → `trainer`, or split over threads by `shards`), evaluation with any
//! decoder, and the events front doors consume.

mod config;
mod distill;
mod evaluate;
mod events;
mod forward;
mod gating;
mod objective;
mod readout;
mod schedule;
mod shards;
mod trainer;

pub use config::{OptimConfig, TrainConfig};
pub use distill::{DistillConfig, LayerMaps, valid_frames};
pub use evaluate::{EvalReport, UtteranceResult, evaluate, evaluate_decoders, evaluate_decoders_async, summarise};
pub use events::TrainEvent;
pub use gating::{block_masks, gate_layout};
pub use objective::{ctc_loss, ctc_min_frames};
pub use schedule::learning_rate;
pub use trainer::{Prepared, Trainer, TrainerState, load_model, prepare_batch};
