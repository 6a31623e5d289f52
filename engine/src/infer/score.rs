//! Scoring one run's models, cut or not: what a model costs (parameters, FLOPs per second of
//! audio, units kept per site) and how it decodes a split, with the run's feature statistics
//! and batch budget. The one scorer behind a run's evaluations, the lab's cuts, `prunelab
//! sweep` and `prunelab compare`.

use super::evaluate::{EvalReport, evaluate};
use crate::audio::FeatureStats;
use crate::data::Utterance;
use crate::decode::Decoder;
use crate::gates::SiteKind;
use crate::model::{Conformer, ConformerConfig};
use crate::prune::{ParamCount, Pruned, flops_per_second, kept_per_site, param_count};
use crate::readback::ReadBackError;

/// What scoring found.
#[derive(Debug, Clone)]
pub struct ModelScore {
    pub params: ParamCount,
    /// Multiply-adds ×2 per second of audio.
    pub flops_per_second: f64,
    /// `(site, kept, total)` units per site kind; empty for a model scored as it is.
    pub kept: Vec<(SiteKind, usize, usize)>,
    /// One report per decoder, in the order they were given.
    pub reports: Vec<EvalReport>,
}

/// Scores models of one run (of architecture `config`, its features normalised by `stats`,
/// evaluated in batches of at most `max_batch_frames` padded frames).
#[derive(Debug, Clone, Copy)]
pub struct Scorer<'a> {
    pub config: &'a ConformerConfig,
    pub stats: &'a FeatureStats,
    pub max_batch_frames: usize,
}

impl Scorer<'_> {
    /// `model` as it is (dense, or cut during training), costed from its own shapes and
    /// decoded on `utterances` by each of `decoders` (one forward pass serves them all).
    pub async fn score_model(
        &self,
        model: &Conformer,
        utterances: &[Utterance],
        decoders: &[&Decoder],
    ) -> Result<ModelScore, ReadBackError> {
        let shapes = model.block_shapes();
        Ok(ModelScore {
            params: param_count(self.config, &shapes),
            flops_per_second: flops_per_second(self.config, &shapes),
            kept: Vec::new(),
            reports: self.decode(model, utterances, decoders).await?,
        })
    }

    /// A cut, costed as the cut accounted it, with the units it kept per site.
    pub async fn score_cut(
        &self,
        pruned: &Pruned,
        utterances: &[Utterance],
        decoders: &[&Decoder],
    ) -> Result<ModelScore, ReadBackError> {
        Ok(ModelScore {
            params: pruned.params,
            flops_per_second: pruned.flops_per_second,
            kept: kept_per_site(self.config, &pruned.keep),
            reports: self.decode(&pruned.model, utterances, decoders).await?,
        })
    }

    async fn decode(
        &self,
        model: &Conformer,
        utterances: &[Utterance],
        decoders: &[&Decoder],
    ) -> Result<Vec<EvalReport>, ReadBackError> {
        evaluate(model, &[], utterances, self.stats, self.max_batch_frames, decoders).await
    }
}
