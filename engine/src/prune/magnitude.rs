//! The magnitude baseline: a unit's score is the norm of the weights it owns (in and out).

use crate::gates::{PerSite, SiteKind};
use crate::model::Conformer;

use super::UnitScores;

/// Weight-norm scores of every unit at `sites` of a dense model. Reads back (a sync point).
pub fn magnitude_scores(model: &Conformer, sites: &[SiteKind]) -> UnitScores {
    let read = |t: burn::prelude::Tensor<1>| -> Vec<f32> { t.try_into_vec_as().unwrap_or_default() };
    model
        .blocks
        .iter()
        .map(|block| {
            let mut scores: PerSite<Vec<f32>> = Default::default();
            let mut put = |kind: SiteKind, values: Option<Vec<f32>>| {
                if sites.contains(&kind) {
                    scores[kind.index()] = values;
                }
            };
            put(SiteKind::Ffn1Hidden, block.ffn1.as_ref().map(|f| read(f.unit_norms())));
            put(SiteKind::Ffn2Hidden, block.ffn2.as_ref().map(|f| read(f.unit_norms())));
            put(SiteKind::ConvInput, block.conv.as_ref().map(|c| read(c.unit_norms())));
            let (query, value) = block
                .attention
                .as_ref()
                .map(|a| a.unit_norms())
                .map_or((None, None), |(q, v)| (Some(read(q)), Some(read(v))));
            put(SiteKind::AttnQuery, query);
            put(SiteKind::AttnValue, value);
            scores
        })
        .collect()
}
