//! Where a training step's batch comes from.

use crate::data::Utterance;

/// Where a training step's batch comes from.
#[derive(Debug, Clone, Copy)]
pub enum StepBatch<'a> {
    /// The trainer picks the step's batch from this training set, by its seeded epoch plan,
    /// so a resumed run sees exactly the batches it would have.
    Planned(&'a [Utterance]),
    /// A batch the caller planned (a corpus streamed from disk plans its own). Empty when every
    /// item of it was unreadable: the step is then skipped, so steps still map to batches.
    Given(&'a [&'a Utterance]),
}
