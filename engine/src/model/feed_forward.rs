//! The Conformer's macaron feed-forward module: LayerNorm → Linear(d→u) → Swish → Dropout →
//! Linear(u→d) → Dropout. The block adds it back at half weight.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::silu;

use super::dropout::dropout;
use super::resize::{KeptUnits, Side, resize_linear, scale_linear};

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
    /// - `hidden_mask`: `[b or 1, 1, u]`, multiplies the hidden units (the pruning gate)
    pub fn forward(&self, x: Tensor<3>, hidden_mask: Option<Tensor<3>>) -> Tensor<3> {
        let hidden = silu(self.expand.forward(self.norm.forward(x))); // [b, s, u]
        let hidden = match hidden_mask {
            Some(mask) => hidden * mask,
            None => hidden,
        };
        let hidden = dropout(&self.dropout, hidden);
        dropout(&self.dropout, self.contract.forward(hidden))
    }

    /// Hidden units `u`.
    pub fn hidden_units(&self) -> usize {
        self.expand.weight.dims()[1]
    }

    /// `[d]`: what the module outputs when every hidden unit is gated off.
    pub fn output_bias(&self) -> Tensor<1> {
        let d = self.contract.weight.dims()[1];
        self.contract
            .bias
            .as_ref()
            .map_or_else(|| Tensor::zeros([d], &self.contract.weight.device()), |b| b.val())
    }

    /// A copy with only `kept` hidden units; each unit's scale is folded into its row of the
    /// contraction (the gate sits after the Swish, so it cannot move before it), and the whole
    /// output is multiplied by `module_scale`.
    pub fn pruned(&self, kept: &KeptUnits, module_scale: f32) -> FeedForward {
        let expand = resize_linear(
            &self.expand,
            None,
            Some(Side {
                units: kept,
                scaled: false,
            }),
        );
        let contract = resize_linear(
            &self.contract,
            Some(Side {
                units: kept,
                scaled: true,
            }),
            None,
        );
        FeedForward {
            norm: self.norm.clone(),
            expand,
            contract: scale_linear(contract, module_scale),
            dropout: self.dropout.clone(),
        }
    }

    /// `[u]`: each hidden unit's weight norm in and out, `‖W1[:, j]‖ · ‖W2[j, :]‖` (magnitude pruning).
    pub fn unit_norms(&self) -> Tensor<1> {
        let incoming = self.expand.weight.val().powf_scalar(2.0).sum_dim(0).sqrt(); // [1, u]
        let outgoing = self.contract.weight.val().powf_scalar(2.0).sum_dim(1).sqrt(); // [u, 1]
        let u = self.hidden_units();
        incoming.reshape([u]) * outgoing.reshape([u])
    }
}
