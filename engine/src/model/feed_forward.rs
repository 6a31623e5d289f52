//! The Conformer's macaron feed-forward module: LayerNorm → Linear(d→u) → Swish → Dropout →
//! Linear(u→d) → Dropout. The block adds it back at half weight.

use burn::nn::{Dropout, DropoutConfig, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;

use burn::tensor::activation::silu;

use super::dropout::{apply_hashed, hashed_draw};
use super::module_output::ModuleOutput;
use super::norm::{layer_norm, layer_norm_init};
use super::product::apply_linear;
use super::resize::{KeptUnits, Side, resize_linear, scale_linear};
use crate::kernels::{self, HashedDropout, UnitGate};

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
            norm: layer_norm_init(self.d_model, device),
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
        self.forward_gated(x, hidden_mask, false)
    }

    /// [`forward`](Self::forward), where `mask_is_dropout` says the hidden mask is itself a
    /// learned dropout (adaptive dropout's samples): the standard dropout of the hidden layer is
    /// then skipped, so kept units are not dropped twice. Without a mask it changes nothing.
    pub fn forward_gated(&self, x: Tensor<3>, hidden_mask: Option<Tensor<3>>, mask_is_dropout: bool) -> Tensor<3> {
        self.output(x, hidden_mask.map(UnitGate::from), mask_is_dropout).value()
    }

    /// [`forward_gated`](Self::forward_gated) up to the contraction's matrix product: its bias
    /// and the output's dropout are left to the block (`model::add_module_output`).
    pub fn output(&self, x: Tensor<3>, hidden_mask: Option<UnitGate>, mask_is_dropout: bool) -> ModuleOutput<'_> {
        let hidden_dropout = if mask_is_dropout && hidden_mask.is_some() {
            HashedDropout::none(1.0)
        } else {
            hashed_draw(&self.dropout, &x.device(), 1.0)
        };
        let hidden = self.gated_hidden(layer_norm(&self.norm, x), hidden_mask, hidden_dropout); // [b, s, u]
        ModuleOutput {
            input: hidden,
            weight: self.contract.weight.val(),
            bias: self.contract.bias.as_ref().map(|b| b.val()),
            dropout: &self.dropout,
        }
    }

    /// `drop(swish(expand(x)) · mask)`: one fused operation with the matrix product where
    /// this thread's path and the device allow it (`kernels::fuses_on`; a drawn mask is drawn
    /// there too), burn's composed ones otherwise (the same hashed mask, uploaded).
    fn gated_hidden(&self, x: Tensor<3>, mask: Option<UnitGate>, drop: HashedDropout) -> Tensor<3> {
        match &self.expand.bias {
            Some(bias) if kernels::fuses_on(&x.device()) => {
                let device = x.device();
                let mask = mask.unwrap_or_else(|| Tensor::ones([1, 1, self.hidden_units()], &device).into());
                kernels::fused_gated_swish_product(x, self.expand.weight.val(), bias.val(), mask, drop)
            }
            _ => {
                let hidden = silu(apply_linear(&self.expand, x));
                let hidden = match mask {
                    Some(mask) => hidden * mask.values(),
                    None => hidden,
                };
                apply_hashed(hidden, drop)
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::with_dropout_stream;
    use burn::tensor::Distribution;

    #[test]
    fn an_adaptive_dropout_mask_stands_in_for_the_hidden_dropout() {
        let device = Device::flex().autodiff();
        let ffn = FeedForwardConfig::new(8, 16).with_dropout(0.5).init(&device);
        let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), &device);
        let mask = Tensor::<3>::random([2, 1, 16], Distribution::Uniform(0.0, 1.0), &device);
        let run = |f: &dyn Fn() -> Tensor<3>| -> Vec<f32> { with_dropout_stream(5, f).try_into_vec_as().unwrap() };
        // Only the output's (hashed) dropout draws from the stream when the mask replaces the
        // hidden one.
        let expected = run(&|| {
            let hidden = silu(ffn.expand.forward(layer_norm(&ffn.norm, x.clone()))) * mask.clone();
            ModuleOutput {
                input: hidden,
                weight: ffn.contract.weight.val(),
                bias: ffn.contract.bias.as_ref().map(|b| b.val()),
                dropout: &ffn.dropout,
            }
            .value()
        });
        let replaced = run(&|| ffn.forward_gated(x.clone(), Some(mask.clone()), true));
        let both = run(&|| ffn.forward_gated(x.clone(), Some(mask.clone()), false));
        let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
        assert!(max_diff(&replaced, &expected) < 1e-6);
        assert!(
            max_diff(&both, &expected) > 1e-3,
            "the default keeps the hidden dropout"
        );
    }
}
