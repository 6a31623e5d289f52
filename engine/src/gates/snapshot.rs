//! Host copies of the gate parameters, and what they say: every unit's retention, and the
//! scores pruning keeps units by.

use super::{GateConfig, GateKind, PerSite, SiteKind};

/// Host copies of what pruning needs from gates: per block, per site, one score per unit that
/// is also its inference scale; the scores that rank units for a budget; and the whole-module
/// gate values (1 where there are none).
#[derive(Debug, Clone, PartialEq)]
pub struct PruningScores {
    pub units: Vec<PerSite<Vec<f32>>>,
    pub rank: Vec<PerSite<Vec<f32>>>,
    pub modules: Vec<[f32; 4]>,
}

/// The gate parameters of a model, on the host: unit logits per block and site (adaptive
/// dropout: `beta`; L0: `log_alpha`), and for L0 each block's head and module `log_alpha`.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSnapshot {
    pub(super) units: Vec<PerSite<Vec<f32>>>,
    /// Per block, each head's logit (empty for gates without head gates).
    pub(super) heads: Vec<Vec<f32>>,
    /// Per block, the four module logits (empty for gates without module gates).
    pub(super) modules: Vec<Vec<f32>>,
    pub(super) d_model: usize,
}

impl GateSnapshot {
    /// Each head's value spread over its value dimensions (`d_model / heads` each).
    fn heads_on_value_dims(&self, heads: &[f32]) -> Vec<f32> {
        let k = self.d_model / heads.len().max(1);
        heads.iter().flat_map(|&z| std::iter::repeat_n(z, k)).collect()
    }

    /// `per_vector` applied to every unit vector, with each block's heads (where gated) put on
    /// its value dimensions.
    fn per_site(&self, per_vector: impl Fn(&[f32]) -> Vec<f32>) -> Vec<PerSite<Vec<f32>>> {
        let mut out: Vec<PerSite<Vec<f32>>> = self
            .units
            .iter()
            .map(|sites| sites.clone().map(|s| s.map(|v| per_vector(&v))))
            .collect();
        for (sites, heads) in out.iter_mut().zip(&self.heads) {
            sites[SiteKind::AttnValue.index()] = Some(self.heads_on_value_dims(&per_vector(heads)));
        }
        out
    }

    /// Retention probability of every unit (see [`GateKind::retention_of`]), heads on their
    /// value dimensions. Empty for a method without gates.
    pub fn retention(&self, config: &GateConfig) -> Vec<PerSite<Vec<f32>>> {
        let Some(kind) = config.gate_kind() else {
            return Vec::new();
        };
        self.per_site(|v| v.iter().map(|&a| kind.retention_of(a)).collect())
    }

    /// What pruning needs: inference scores per unit, rank scores, and module gate values.
    pub fn pruning_scores(&self, config: &GateConfig) -> PruningScores {
        let kind: &dyn GateKind = config.gate_kind().expect("a snapshot exists only for a gated method");
        let modules = if self.modules.is_empty() {
            vec![[1.0; 4]; self.units.len()]
        } else {
            self.modules
                .iter()
                .map(|m| {
                    let z = kind.inference_scores(m);
                    [z[0], z[1], z[2], z[3]]
                })
                .collect()
        };
        PruningScores {
            units: self.per_site(|v| kind.inference_scores(v)),
            rank: self.per_site(|v| kind.rank_scores(v)),
            modules,
        }
    }
}
