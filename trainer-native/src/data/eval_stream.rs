//! Scoring a corpus too large to featurise at once: indexed utterances are read, featurised
//! and decoded a chunk at a time, and only their transcripts and scores are kept.

use prunelab_engine::audio::{FbankConfig, FeatureStats};
use prunelab_engine::data::{CorpusIssue, IndexEntry};
use prunelab_engine::decode::Decoder;
use prunelab_engine::infer::{EvalReport, UtteranceResult, evaluate, summarise};
use prunelab_engine::model::{BlockMasks, Conformer};
use prunelab_engine::readback::block_on;

use crate::atomic::write_atomically;
use crate::data::stream::featurise_all;

/// Utterances featurised at once (about 20 minutes of LibriSpeech audio, ≈ 40 MB of features).
const CHUNK: usize = 256;

/// What a model, its masks and the data's normalisation need to be scored.
pub struct Scorer<'a> {
    pub model: &'a Conformer,
    pub masks: &'a [BlockMasks],
    pub stats: &'a FeatureStats,
    pub fbank: &'a FbankConfig,
    pub max_batch_frames: usize,
    pub workers: usize,
}

impl Scorer<'_> {
    /// One report per decoder over every readable entry; unreadable ones are returned (or, when
    /// `strict`, the first is the error).
    pub fn score(
        &self,
        entries: &[IndexEntry],
        decoders: &[&Decoder],
        strict: bool,
        mut progress: impl FnMut(usize),
    ) -> Result<(Vec<EvalReport>, Vec<CorpusIssue>), String> {
        let mut results: Vec<Vec<UtteranceResult>> = vec![Vec::with_capacity(entries.len()); decoders.len()];
        let mut skipped = Vec::new();
        for (i, chunk) in entries.chunks(CHUNK).enumerate() {
            let (utterances, mut bad) = featurise_all(chunk, self.fbank, self.workers);
            if strict && let Some(first) = bad.first() {
                return Err(format!("{first} (--strict stops at the first bad item)"));
            }
            skipped.append(&mut bad);
            if !utterances.is_empty() {
                let reports = block_on(evaluate(
                    self.model,
                    self.masks,
                    &utterances,
                    self.stats,
                    self.max_batch_frames,
                    decoders,
                ))
                .map_err(|e| e.to_string())?;
                for (out, report) in results.iter_mut().zip(reports) {
                    out.extend(report.utterances);
                }
            }
            progress((i * CHUNK + chunk.len()).min(entries.len()));
        }
        let reports = results
            .into_iter()
            .map(|mut r| {
                r.sort_by(|a, b| a.id.cmp(&b.id));
                summarise(r)
            })
            .collect();
        Ok((reports, skipped))
    }
}

/// Writes `report`'s hypotheses to `path`, one `<utt-id> HYPOTHESIS` line each, as
/// `prunelab wer` reads them.
pub fn write_hypotheses(path: &std::path::Path, report: &EvalReport) -> Result<(), String> {
    let body: String = report
        .utterances
        .iter()
        .map(|u| format!("{} {}\n", u.id, u.hypothesis))
        .collect();
    write_atomically(path, body.as_bytes())
}
