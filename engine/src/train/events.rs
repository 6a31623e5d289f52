//! What a training run reports. Front doors draw or log these and nothing else.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// One optimiser step finished.
    Step {
        step: usize,
        /// CTC loss (mean per target token).
        loss: f32,
        /// The gate regulariser added to the loss (0 for an ungated run).
        #[serde(default)]
        penalty: f32,
        /// L0: the expected sparsity of the prunable parameters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_sparsity: Option<f32>,
        /// The distillation loss (runs with a teacher).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        distill: Option<f32>,
        lr: f64,
        utterances: usize,
        /// Seconds of audio in the batch.
        audio_seconds: f64,
    },
    /// A step whose loss was not finite was skipped (weights untouched).
    SkippedStep { step: usize },
    /// An evaluation finished.
    Eval {
        step: usize,
        split: String,
        wer: f64,
        cer: f64,
        utterances: usize,
    },
}

impl TrainEvent {
    /// How many optimiser steps the run had taken when this event happened. A run resumed
    /// from a checkpoint at step `n` keeps exactly the events with `steps_done() <= n`.
    pub fn steps_done(&self) -> usize {
        match self {
            Self::Step { step, .. } | Self::SkippedStep { step } => step + 1,
            Self::Eval { step, .. } => *step,
        }
    }
}
