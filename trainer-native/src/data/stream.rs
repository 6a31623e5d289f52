//! Feature extraction for a streamed corpus, in worker threads, a bounded number of batches
//! ahead of training.
//!
//! Worker `w` of `W` prepares the batches of steps `first + w`, `first + w + W`, … in order and
//! hands each over through its own channel of `depth` slots; the consumer takes step `s` from
//! worker `(s − first) mod W`. Batches so arrive in step order without a reordering buffer, and
//! at most `W × (depth + 1)` batches of features exist at once, however large the corpus.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use prunelab_engine::audio::FbankConfig;
use prunelab_engine::data::{CorpusIssue, IndexEntry, StreamPlan, Utterance, load_indexed};

/// One step's batch, featurised, with the items that could not be read.
pub struct StreamedBatch {
    pub step: usize,
    pub epoch: usize,
    pub utterances: Vec<Utterance>,
    pub skipped: Vec<CorpusIssue>,
}

/// Batches for steps `first..end`, prepared in the background.
pub struct BatchStream {
    receivers: Vec<Receiver<StreamedBatch>>,
    workers: Vec<JoinHandle<()>>,
    next_step: usize,
    first_step: usize,
    end_step: usize,
}

impl BatchStream {
    pub fn start(
        entries: Arc<Vec<IndexEntry>>,
        plan: Arc<StreamPlan>,
        fbank: &FbankConfig,
        steps: std::ops::Range<usize>,
        workers: usize,
        depth: usize,
    ) -> Self {
        let workers = workers.max(1);
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for worker in 0..workers {
            let (sender, receiver) = sync_channel(depth);
            let (entries, plan, fbank) = (entries.clone(), plan.clone(), fbank.clone());
            let mine = (steps.start + worker..steps.end).step_by(workers);
            handles.push(std::thread::spawn(move || {
                prepare_steps(&entries, &plan, &fbank, mine, &sender);
            }));
            receivers.push(receiver);
        }
        Self {
            receivers,
            workers: handles,
            next_step: steps.start,
            first_step: steps.start,
            end_step: steps.end,
        }
    }

    /// The next step's batch, waiting for it if the workers are behind; `None` after the last.
    pub fn next_batch(&mut self) -> Option<StreamedBatch> {
        if self.next_step >= self.end_step {
            return None;
        }
        let worker = (self.next_step - self.first_step) % self.receivers.len();
        let batch = self.receivers[worker].recv().ok()?;
        debug_assert_eq!(batch.step, self.next_step);
        self.next_step += 1;
        Some(batch)
    }
}

impl Drop for BatchStream {
    fn drop(&mut self) {
        // Closing the channels makes every blocked worker's next send fail, and it returns.
        self.receivers.clear();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

fn prepare_steps(
    entries: &[IndexEntry],
    plan: &StreamPlan,
    fbank: &FbankConfig,
    steps: impl Iterator<Item = usize>,
    sender: &SyncSender<StreamedBatch>,
) {
    let mut cursor = plan.cursor();
    for step in steps {
        let (epoch, items) = cursor.batch_at(step);
        let mut batch = StreamedBatch {
            step,
            epoch,
            utterances: Vec::with_capacity(items.len()),
            skipped: Vec::new(),
        };
        for item in items {
            match load_indexed(&entries[item.entry], item.speed, fbank) {
                Ok(utterance) => batch.utterances.push(utterance),
                Err(issue) => batch.skipped.push(issue),
            }
        }
        if sender.send(batch).is_err() {
            return; // the consumer has gone
        }
    }
}

/// Featurises `entries` (at normal speed) on `workers` threads, keeping their order; items that
/// cannot be read are returned beside the utterances.
pub fn featurise_all(
    entries: &[IndexEntry],
    fbank: &FbankConfig,
    workers: usize,
) -> (Vec<Utterance>, Vec<CorpusIssue>) {
    let workers = workers.max(1);
    let chunk = entries.len().div_ceil(workers).max(1);
    let results: Vec<Vec<Result<Utterance, CorpusIssue>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|e| load_indexed(e, 1.0, fbank)).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    let mut utterances = Vec::with_capacity(entries.len());
    let mut skipped = Vec::new();
    for result in results.into_iter().flatten() {
        match result {
            Ok(u) => utterances.push(u),
            Err(issue) => skipped.push(issue),
        }
    }
    (utterances, skipped)
}

/// Worker threads to use: every core, at least one.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
