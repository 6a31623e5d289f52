//! Why training, restoring or evaluating a run failed.

use crate::limits::ConfigError;
use crate::optim::OptimStateError;
use crate::prune::PlanError;
use crate::readback::ReadBackError;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A read-back from the device failed: the step (or evaluation) that needed it stopped.
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Saved state that does not load, or state that cannot be saved.
    #[error("{what}: {detail}")]
    State { what: &'static str, detail: String },
    /// An optimiser's saved state that does not load, or that cannot be saved.
    #[error("{what}: {source}")]
    Optimiser {
        what: &'static str,
        source: OptimStateError,
    },
    #[error("the run is gated but the checkpoint holds no gates")]
    MissingGates,
    #[error("the teacher must be a dense model with the student's width, depth and vocabulary")]
    TeacherMismatch,
    /// A warm start from a model that this run's model cannot take the weights of.
    #[error("cannot start from this model: {0}")]
    StartMismatch(String),
    #[error("training needs at least one utterance")]
    NoTrainingData,
    /// A cut of the model failed: the magnitude method's during training, or an evaluation's.
    #[error("cutting the model at step {step}: {source}")]
    Cut { step: usize, source: PlanError },
}

impl TrainError {
    /// A `State` error from any debuggable cause.
    pub(crate) fn state(what: &'static str, detail: impl std::fmt::Debug) -> Self {
        Self::State {
            what,
            detail: format!("{detail:?}"),
        }
    }
}
