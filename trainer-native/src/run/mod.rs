//! A training run on disk and its survival: the run directory, signals, and the
//! loop that drives the engine's `Run` and writes what its events say (metrics, trace,
//! TensorBoard scalars).

pub mod dir;
pub mod driver;
pub mod interrupt;
pub mod tensorboard;
