//! Evaluation: CTC decoding (greedy or beam) and sclite-style scoring over a split.

use serde::{Deserialize, Serialize};

use super::batch::prepare_batch;
use crate::audio::FeatureStats;
use crate::data::{ShapeBuckets, Utterance, make_batches};
use crate::decode::Decoder;
use crate::model::{BlockMasks, Conformer, ConformerOutput};
use crate::readback::{ReadBackError, read_floats};
use crate::rng::SplitMix64;
use crate::text::{CharTokenizer, EditCounts, score_chars, score_words};

/// One utterance's transcript and score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UtteranceResult {
    pub id: String,
    pub reference: String,
    pub hypothesis: String,
    pub words: EditCounts,
    pub chars: EditCounts,
}

/// Totals over a split, plus every utterance (sorted by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub words: EditCounts,
    pub chars: EditCounts,
    /// Utterances with at least one word error.
    pub sentence_errors: usize,
    pub utterances: Vec<UtteranceResult>,
}

impl EvalReport {
    pub fn wer(&self) -> f64 {
        self.words.rate_percent()
    }

    pub fn cer(&self) -> f64 {
        self.chars.rate_percent()
    }

    /// Sentence error rate in percent.
    pub fn ser(&self) -> f64 {
        100.0 * self.sentence_errors as f64 / self.utterances.len().max(1) as f64
    }
}

/// Decodes every utterance with `model` (an inference copy) under the inference gate `masks`
/// (empty: ungated), in one forward pass per batch, and scores it once per decoder (reports in
/// the same order). Reads logits back once per batch (a sync point on native backends).
pub async fn evaluate(
    model: &Conformer,
    masks: &[BlockMasks],
    utterances: &[Utterance],
    stats: &FeatureStats,
    max_batch_frames: usize,
    decoders: &[&Decoder],
) -> Result<Vec<EvalReport>, ReadBackError> {
    let mut scoring = Scoring::new(utterances, max_batch_frames, decoders.len());
    for indices in scoring.plan.batches.clone() {
        let (batch, output) = forward_batch(model, masks, utterances, &indices, stats);
        let logits = read_floats(output.logits.clone(), "logits").await?;
        scoring.add(&batch, &output, &logits, decoders);
    }
    Ok(scoring.reports())
}

/// The utterances of one batch and the model's output for them.
fn forward_batch<'a>(
    model: &Conformer,
    masks: &[BlockMasks],
    utterances: &'a [Utterance],
    indices: &[usize],
    stats: &FeatureStats,
) -> (Vec<&'a Utterance>, ConformerOutput) {
    let device = model.device();
    let batch: Vec<&Utterance> = indices.iter().map(|&i| &utterances[i]).collect();
    let prepared = prepare_batch(&batch, stats, None, ShapeBuckets::default(), &device);
    let output = model.forward_gated(prepared.feats, &prepared.batch.frame_lengths, masks);
    (batch, output)
}

/// Per-decoder results accumulated batch by batch.
struct Scoring {
    plan: crate::data::BatchPlan,
    results: Vec<Vec<UtteranceResult>>,
}

impl Scoring {
    fn new(utterances: &[Utterance], max_batch_frames: usize, decoders: usize) -> Self {
        Self {
            plan: make_batches(
                utterances,
                max_batch_frames,
                ShapeBuckets::default(),
                &mut SplitMix64::new(0),
            ),
            results: vec![Vec::with_capacity(utterances.len()); decoders],
        }
    }

    /// Decodes and scores one batch from its logits `[b, s, v]` on the host.
    fn add(&mut self, batch: &[&Utterance], output: &ConformerOutput, logits: &[f32], decoders: &[&Decoder]) {
        let [_, s, v] = output.logits.dims();
        for (b, utterance) in batch.iter().enumerate() {
            let rows = &logits[b * s * v..(b + 1) * s * v];
            for (decoder, out) in decoders.iter().zip(&mut self.results) {
                let ids = decoder.decode(rows, output.lengths[b], v);
                out.push(score(utterance, CharTokenizer.decode(&ids)));
            }
        }
    }

    fn reports(self) -> Vec<EvalReport> {
        self.results
            .into_iter()
            .map(|mut r| {
                r.sort_by(|a, b| a.id.cmp(&b.id));
                summarise(r)
            })
            .collect()
    }
}

fn score(utterance: &Utterance, hypothesis: String) -> UtteranceResult {
    UtteranceResult {
        id: utterance.id.clone(),
        reference: utterance.text.clone(),
        words: score_words(&utterance.text, &hypothesis),
        chars: score_chars(&utterance.text, &hypothesis),
        hypothesis,
    }
}

/// Corpus totals from per-utterance results.
pub fn summarise(utterances: Vec<UtteranceResult>) -> EvalReport {
    let mut words = EditCounts::default();
    let mut chars = EditCounts::default();
    for u in &utterances {
        words.add(&u.words);
        chars.add(&u.chars);
    }
    let sentence_errors = utterances.iter().filter(|u| u.words.errors() > 0).count();
    EvalReport {
        words,
        chars,
        sentence_errors,
        utterances,
    }
}
