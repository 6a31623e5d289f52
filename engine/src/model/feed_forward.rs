//! The Conformer's macaron feed-forward module: LayerNorm → Linear(d→u) → Swish → Dropout →
//! Linear(u→d) → Dropout. The block adds it back at half weight.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

#[derive(Config, Debug)]
pub struct FeedForwardConfig {
    pub d_model: usize,
    /// Hidden units `u` (the prunable width).
    pub d_hidden: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct FeedForward {
    norm: LayerNorm,
    expand: Linear,
    contract: Linear,
    dropout: Dropout,
}

impl FeedForwardConfig {
    pub fn init(&self, device: &Device) -> FeedForward {
        assert!(self.d_hidden > 0, "a feed-forward module needs hidden units");
        FeedForward {
            norm: LayerNormConfig::new(self.d_model).init(device),
            expand: LinearConfig::new(self.d_model, self.d_hidden).init(device),
            contract: LinearConfig::new(self.d_hidden, self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl FeedForward {
    /// # Shapes
    /// - `x`: `[b, s, d]` → `[b, s, d]` (the residual is added by the block)
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let hidden = silu(self.expand.forward(self.norm.forward(x))); // [b, s, u]
        let hidden = self.dropout.forward(hidden);
        self.dropout.forward(self.contract.forward(hidden))
    }
}
