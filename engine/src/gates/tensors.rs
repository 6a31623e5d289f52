//! The gate parameters of a model as plain tensors, for the gate kinds' regularisers: what they
//! read of `Gates` without depending on it.

use burn::prelude::*;

use super::{PerSite, SiteKind};

/// Every gate parameter's current value, by block (autodiff-tracked when the gates are).
pub struct GateTensors {
    /// Per block, the unit logits of each gated site.
    pub units: Vec<PerSite<Tensor<1>>>,
    /// Per block, each head's logit `[h]` (gate kinds with head gates only, else empty).
    pub heads: Vec<Tensor<1>>,
    /// Per block, the four module logits (gate kinds with module gates only, else empty).
    pub modules: Vec<Tensor<1>>,
    /// The Lagrange multipliers `[2]` (L0).
    pub lambdas: Option<Tensor<1>>,
    pub device: Device,
}

impl GateTensors {
    /// Every gated unit vector's logits, by block and site.
    pub fn unit_logits(&self) -> impl Iterator<Item = &Tensor<1>> {
        self.units.iter().flatten().flatten()
    }

    /// The same values cut off from autodiff: for what is computed from the gates but not
    /// differentiated (the multipliers' step), so that it records nothing on the tape.
    pub fn detached(self) -> Self {
        let detach = |t: Tensor<1>| t.detach();
        Self {
            units: self
                .units
                .into_iter()
                .map(|sites| sites.map(|s| s.map(detach)))
                .collect(),
            heads: self.heads.into_iter().map(detach).collect(),
            modules: self.modules.into_iter().map(detach).collect(),
            lambdas: self.lambdas.map(detach),
            device: self.device,
        }
    }

    /// Block `block`'s unit logits at `site`, where gated.
    pub fn unit_logits_at(&self, block: usize, site: SiteKind) -> Option<&Tensor<1>> {
        self.units[block][site.index()].as_ref()
    }
}
