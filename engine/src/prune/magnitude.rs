//! The magnitude baseline: a unit's score is the norm of the weights it owns (in and out).

use burn::prelude::*;

use crate::gates::{PerSite, SiteKind};
use crate::model::Conformer;
use crate::readback::{ReadBackError, read_floats};

use super::UnitScores;

/// Weight-norm scores of every unit at `sites` of a dense model (one read-back).
pub async fn magnitude_scores(model: &Conformer, sites: &[SiteKind]) -> Result<UnitScores, ReadBackError> {
    let norms = UnitNorms::of(model, sites);
    let flat = read_floats(norms.flat(), "weight norms").await?;
    Ok(norms.scores(&flat))
}

/// The norm tensors of every scored site, still on the device, in block order.
struct UnitNorms {
    blocks: usize,
    /// `(block, site, norms [units])`.
    entries: Vec<(usize, SiteKind, Tensor<1>)>,
}

impl UnitNorms {
    fn of(model: &Conformer, sites: &[SiteKind]) -> Self {
        let mut entries = Vec::new();
        for (b, block) in model.blocks.iter().enumerate() {
            let mut put = |kind: SiteKind, norms: Option<Tensor<1>>| {
                if let Some(norms) = norms.filter(|_| sites.contains(&kind)) {
                    entries.push((b, kind, norms));
                }
            };
            put(SiteKind::Ffn1Hidden, block.ffn1.as_ref().map(|f| f.unit_norms()));
            put(SiteKind::Ffn2Hidden, block.ffn2.as_ref().map(|f| f.unit_norms()));
            put(SiteKind::ConvInput, block.conv.as_ref().map(|c| c.unit_norms()));
            let (query, value) = block
                .attention
                .as_ref()
                .map(|a| a.unit_norms())
                .map_or((None, None), |(q, v)| (Some(q), Some(v)));
            put(SiteKind::AttnQuery, query);
            put(SiteKind::AttnValue, value);
        }
        Self {
            blocks: model.blocks.len(),
            entries,
        }
    }

    /// Every norm in one tensor, so one read-back fetches them all.
    fn flat(&self) -> Tensor<1> {
        Tensor::cat(self.entries.iter().map(|(_, _, t)| t.clone()).collect(), 0)
    }

    /// Splits the host copy of [`UnitNorms::flat`] into per-block, per-site scores.
    fn scores(&self, flat: &[f32]) -> UnitScores {
        let mut scores: UnitScores = vec![PerSite::default(); self.blocks];
        let mut offset = 0;
        for (b, kind, norms) in &self.entries {
            let [n] = norms.dims();
            let end = (offset + n).min(flat.len());
            scores[*b][kind.index()] = Some(flat[offset.min(end)..end].to_vec());
            offset += n;
        }
        scores
    }
}
