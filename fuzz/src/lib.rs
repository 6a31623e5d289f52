//! Mutation fuzzing of every Prunelab loader on stable Rust (cargo-fuzz needs nightly): each
//! target starts from valid files made by the engine's writers, mutates them, and runs the
//! loader, keeping inputs that reach an outcome not seen before. See `tests/fuzz/run.sh`.

pub mod guard;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;
