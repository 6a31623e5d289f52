//! The sizes gates need: how many units each site has and what each costs.

use super::{SiteKind, params_per_unit, site_units};

/// A model's shape as far as its gates are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLayout {
    pub blocks: usize,
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub conv_kernel: usize,
}

impl GateLayout {
    pub fn units(&self, kind: SiteKind) -> usize {
        site_units(kind, self.d_model, self.d_ff)
    }

    /// Parameters of one attention head: its query/key and value/output slices.
    pub fn head_params(&self) -> usize {
        let k = self.d_model / self.num_heads;
        k * (params_per_unit(SiteKind::AttnQuery, self.d_model, self.conv_kernel)
            + params_per_unit(SiteKind::AttnValue, self.d_model, self.conv_kernel))
    }

    /// Parameters the L0 masks can remove in one block.
    pub fn prunable_per_block(&self) -> usize {
        let ppu = |k: SiteKind| params_per_unit(k, self.d_model, self.conv_kernel);
        2 * self.d_ff * ppu(SiteKind::Ffn1Hidden)
            + self.num_heads * self.head_params()
            + self.d_model * ppu(SiteKind::ConvInput)
    }
}
