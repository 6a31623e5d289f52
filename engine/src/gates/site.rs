//! Pruning sites: the gated unit vectors of one Conformer block.

use serde::{Deserialize, Serialize};

/// One kind of gated vector. Every block has one site of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SiteKind {
    /// Hidden units of the first (macaron) feed-forward module.
    #[serde(rename = "ffn1.hidden")]
    Ffn1Hidden,
    /// Query dimensions of self-attention (pruning one also removes its key dimension).
    #[serde(rename = "attn.query")]
    AttnQuery,
    /// Value dimensions of self-attention.
    #[serde(rename = "attn.value")]
    AttnValue,
    /// Input channels of the depthwise convolution (the GLU's outputs).
    #[serde(rename = "conv.input")]
    ConvInput,
    /// Hidden units of the second feed-forward module.
    #[serde(rename = "ffn2.hidden")]
    Ffn2Hidden,
}

impl SiteKind {
    /// In forward order within a block.
    pub const ALL: [SiteKind; 5] = [
        SiteKind::Ffn1Hidden,
        SiteKind::AttnQuery,
        SiteKind::AttnValue,
        SiteKind::ConvInput,
        SiteKind::Ffn2Hidden,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SiteKind::Ffn1Hidden => "ffn1.hidden",
            SiteKind::AttnQuery => "attn.query",
            SiteKind::AttnValue => "attn.value",
            SiteKind::ConvInput => "conv.input",
            SiteKind::Ffn2Hidden => "ffn2.hidden",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Position in [`SiteKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// How many units each site kind has in one block of a model of width `d_model` with `d_ff`
/// feed-forward units (query and value count all heads together).
pub fn site_units(kind: SiteKind, d_model: usize, d_ff: usize) -> usize {
    match kind {
        SiteKind::Ffn1Hidden | SiteKind::Ffn2Hidden => d_ff,
        SiteKind::AttnQuery | SiteKind::AttnValue | SiteKind::ConvInput => d_model,
    }
}

/// Parameters that deleting one unit of `kind` removes, counted the way burn's `num_params`
/// counts them (BatchNorm's running mean and variance included).
pub fn params_per_unit(kind: SiteKind, d_model: usize, conv_kernel: usize) -> usize {
    let d = d_model;
    match kind {
        // W1 column + b1 entry, W2 row.
        SiteKind::Ffn1Hidden | SiteKind::Ffn2Hidden => 2 * d + 1,
        // W_Q column + b_Q entry, W_K column + b_K entry.
        SiteKind::AttnQuery => 2 * d + 2,
        // W_V column + b_V entry, W_O row.
        SiteKind::AttnValue => 2 * d + 1,
        // Both GLU halves of pointwise-in (columns + biases), the depthwise kernel and bias,
        // BatchNorm's four entries, the pointwise-out row.
        SiteKind::ConvInput => 2 * (d + 1) + (conv_kernel + 1) + 4 + d,
    }
}
