//! One Conformer block: x + ½·FFN(x) → + MHSA → + Conv → + ½·FFN → LayerNorm.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::{
    ConvModule, ConvModuleConfig, FeedForward, FeedForwardConfig, RelPosSelfAttention, RelPosSelfAttentionConfig,
};

#[derive(Config, Debug)]
pub struct ConformerBlockConfig {
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub conv_kernel: usize,
    #[config(default = 64)]
    pub max_rel_distance: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct ConformerBlock {
    pub ffn1: FeedForward,
    pub attention: RelPosSelfAttention,
    pub conv: ConvModule,
    pub ffn2: FeedForward,
    norm: LayerNorm,
}

impl ConformerBlockConfig {
    pub fn init(&self, device: &Device) -> ConformerBlock {
        let ffn = || {
            FeedForwardConfig::new(self.d_model, self.d_ff)
                .with_dropout(self.dropout)
                .init(device)
        };
        ConformerBlock {
            ffn1: ffn(),
            attention: RelPosSelfAttentionConfig::new(self.d_model, self.num_heads)
                .with_max_rel_distance(self.max_rel_distance)
                .with_dropout(self.dropout)
                .init(device),
            conv: ConvModuleConfig::new(self.d_model, self.d_model, self.conv_kernel)
                .with_dropout(self.dropout)
                .init(device),
            ffn2: ffn(),
            norm: LayerNormConfig::new(self.d_model).init(device),
        }
    }
}

impl ConformerBlock {
    /// # Shapes
    /// - `x`: `[b, s, d]`, `padding`: `[b, s]` → `[b, s, d]`
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let x = x.clone() + self.ffn1.forward(x).mul_scalar(0.5);
        let x = x.clone() + self.attention.forward(x, padding.clone());
        let x = x.clone() + self.conv.forward(x, padding);
        let x = x.clone() + self.ffn2.forward(x).mul_scalar(0.5);
        self.norm.forward(x)
    }
}
