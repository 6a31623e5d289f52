//! The Conformer convolution module: LayerNorm → pointwise conv (d → 2c) → GLU → depthwise conv
//! (kernel k) → BatchNorm → Swish → pointwise conv (c → d) → Dropout.
//!
//! BatchNorm (as in the paper) rather than LayerNorm after the depthwise convolution: it acts on
//! each channel alone, so deleting a channel leaves the others' outputs unchanged. Pointwise
//! convolutions are linear layers over the channel dimension.

use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{glu, silu};

#[derive(Config, Debug)]
pub struct ConvModuleConfig {
    pub d_model: usize,
    /// Channels `c` after the GLU (the prunable width).
    pub channels: usize,
    /// Depthwise kernel size (odd, so the output stays aligned with the input).
    pub kernel_size: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct ConvModule {
    norm: LayerNorm,
    pointwise_in: Linear,
    depthwise: Conv1d,
    batch_norm: BatchNorm,
    pointwise_out: Linear,
    dropout: Dropout,
}

impl ConvModuleConfig {
    pub fn init(&self, device: &Device) -> ConvModule {
        assert!(
            self.kernel_size % 2 == 1,
            "depthwise kernel size must be odd, got {}",
            self.kernel_size
        );
        ConvModule {
            norm: LayerNormConfig::new(self.d_model).init(device),
            pointwise_in: LinearConfig::new(self.d_model, 2 * self.channels).init(device),
            depthwise: Conv1dConfig::new(self.channels, self.channels, self.kernel_size)
                .with_groups(self.channels)
                .with_padding(PaddingConfig1d::Same)
                .init(device),
            batch_norm: BatchNormConfig::new(self.channels).init(device),
            pointwise_out: LinearConfig::new(self.channels, self.d_model).init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
        }
    }
}

impl ConvModule {
    /// # Shapes
    /// - `x`: `[b, s, d]`
    /// - `padding`: `[b, s]`, `true` on padded frames
    /// - returns `[b, s, d]` (the residual is added by the block)
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let x = glu(self.pointwise_in.forward(self.norm.forward(x)), 2); // [b, s, c]
        let c = x.dims()[2];
        // Zero padded frames so the depthwise kernel cannot smear them into real ones.
        let x = x.mask_fill(padding.reshape([b, s, 1]).expand([b, s, c]), 0.0);
        let x = self.depthwise.forward(x.swap_dims(1, 2)); // [b, c, s]
        let x = silu(self.batch_norm.forward(x)).swap_dims(1, 2); // [b, s, c]
        self.dropout.forward(self.pointwise_out.forward(x))
    }
}
