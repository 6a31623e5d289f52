//! The Conformer convolution module: LayerNorm → pointwise conv (d → 2c) → GLU → depthwise conv
//! (kernel k) → BatchNorm → Swish → pointwise conv (c → d) → Dropout.
//!
//! BatchNorm (as in the paper) rather than LayerNorm after the depthwise convolution: it acts on
//! each channel alone, so deleting a channel leaves the others' outputs unchanged. Pointwise
//! convolutions are linear layers over the channel dimension.

use burn::module::RunningState;
use burn::nn::PaddingConfig1d;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;

use burn::tensor::activation::{glu, silu};

use super::module_output::ModuleOutput;
use super::norm::{layer_norm, layer_norm_init};
use super::padding::Padding;
use super::product::{apply_linear, product};
use super::resize::{KeptUnits, Side, keep, param, resize_linear, scale_linear};
use crate::kernels::{self, UnitGate};

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
            norm: layer_norm_init(self.d_model, device),
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
    /// BatchNorm's running mean and variance (flushed). A training forward pass updates them,
    /// also when its step is then thrown away for a non-finite loss.
    pub fn running_stats(&self) -> [Tensor<1>; 2] {
        [
            self.batch_norm.running_mean.value_sync(),
            self.batch_norm.running_var.value_sync(),
        ]
    }

    /// Puts back running statistics saved by [`ConvModule::running_stats`].
    pub fn restore_running_stats(&self, [mean, var]: [Tensor<1>; 2]) {
        self.batch_norm.running_mean.update(mean);
        self.batch_norm.running_var.update(var);
    }

    /// # Shapes
    /// - `x`: `[b, s, d]`
    /// - `padding`: of `[b, s]` frames
    /// - `channel_mask`: `[b or 1, 1, c]`, multiplies the depthwise input channels (the pruning gate)
    /// - returns `[b, s, d]` (the residual is added by the block)
    pub fn forward(&self, x: Tensor<3>, padding: &Padding, channel_mask: Option<Tensor<3>>) -> Tensor<3> {
        self.output(x, padding, channel_mask.map(UnitGate::from)).value()
    }

    /// [`forward`](Self::forward) up to the last pointwise matrix product: its bias and the
    /// output's dropout are left to the block (`model::add_module_output`).
    pub fn output(&self, x: Tensor<3>, padding: &Padding, channel_mask: Option<UnitGate>) -> ModuleOutput<'_> {
        let x = self.gated_glu(layer_norm(&self.norm, x), padding, channel_mask); // [b, s, c]
        let x = self.convolved(x); // [b, s, c]
        ModuleOutput {
            input: x,
            weight: self.pointwise_out.weight.val(),
            bias: self.pointwise_out.bias.as_ref().map(|b| b.val()),
            dropout: &self.dropout,
        }
    }

    /// `glu(pointwise_in(x)) · mask` with padded frames zeroed, so that the depthwise kernel
    /// cannot smear them into real ones: one fused operation after the matrix product where
    /// this thread's path and the device allow it (`kernels::fuses_on`; a drawn mask is drawn
    /// there too), burn's composed ones otherwise.
    fn gated_glu(&self, x: Tensor<3>, padding: &Padding, mask: Option<UnitGate>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let c = self.channels();
        match &self.pointwise_in.bias {
            Some(bias) if kernels::fuses_on(&x.device()) => {
                let device = x.device();
                let pre = product(x, self.pointwise_in.weight.val());
                let mask = mask.unwrap_or_else(|| Tensor::ones([1, 1, c], &device).into());
                kernels::fused_glu_gate(pre, bias.val(), mask, padding.keep.clone())
            }
            _ => {
                let x = glu(apply_linear(&self.pointwise_in, x), 2);
                let x = match mask {
                    Some(mask) => x * mask.values(),
                    None => x,
                };
                x.mask_fill(padding.padded.clone().reshape([b, s, 1]).expand([b, s, c]), 0.0)
            }
        }
    }

    /// `swish(BatchNorm(depthwise(x)))` for `x` `[b, s, c]`. In training on a device that fuses
    /// (see `kernels::fuses_on`), the convolution, the batch's moments and the normalisation are
    /// fused operations in this layout (no transposes), and the running statistics are updated
    /// as burn's layer updates them (momentum, the biased variance); otherwise burn's
    /// convolution, layer and Swish on the transposed `[b, c, s]`.
    fn convolved(&self, x: Tensor<3>) -> Tensor<3> {
        let norm = &self.batch_norm;
        let device = x.device();
        let training = device.is_autodiff() && norm.training.is_enabled();
        let bias = match &self.depthwise.bias {
            Some(bias) if training && kernels::fuses_on(&device) => bias.val(),
            _ => return silu(norm.forward(self.depthwise.forward(x.swap_dims(1, 2)))).swap_dims(1, 2),
        };
        let x = kernels::fused_depthwise_conv(x, self.depthwise.weight.val(), bias);
        let (mean, variance) = kernels::fused_channel_moments(x.clone());
        let momentum = norm.momentum;
        for (state, batch) in [(&norm.running_mean, &mean), (&norm.running_var, &variance)] {
            let running = state.value_sync().to_device(&device).mul_scalar(1.0 - momentum);
            state.update(running.add(batch.clone().detach().mul_scalar(momentum)).detach());
        }
        kernels::fused_batch_norm_swish(
            x,
            norm.gamma.val(),
            norm.beta.val(),
            mean,
            variance,
            norm.epsilon as f32,
        )
    }

    /// Channels `c`.
    pub fn channels(&self) -> usize {
        self.pointwise_out.weight.dims()[0]
    }

    /// `[c]`: what each channel feeds the last pointwise convolution when its input is gated
    /// to zero. Not zero: the depthwise bias and BatchNorm still act on it, at every frame alike.
    fn gated_off_activations(&self) -> Tensor<1> {
        let c = self.channels();
        let zeros = Tensor::<3>::zeros([1, c, 1], &self.pointwise_out.weight.device());
        silu(self.batch_norm.forward(self.depthwise.forward(zeros))).reshape([c])
    }

    /// `[d]`: what the module outputs when every channel is gated off.
    pub fn output_bias(&self) -> Tensor<1> {
        let c = self.channels();
        let x = self.gated_off_activations().reshape([1, 1, c]);
        let d = self.pointwise_out.weight.dims()[1];
        self.pointwise_out.forward(x).reshape([d])
    }

    /// A copy with only `kept` channels: both GLU halves of the first pointwise convolution,
    /// the depthwise kernel (where the channel's scale folds in; its bias is not scaled because
    /// the gate acts before the kernel), the BatchNorm entry and the input of the last
    /// pointwise convolution. A removed channel's constant contribution (see
    /// `gated_off_activations`) moves into the last convolution's bias. `module_scale`
    /// multiplies the output.
    pub fn pruned(&self, kept: &KeptUnits, module_scale: f32) -> ConvModule {
        let c = self.channels();
        let device = self.pointwise_out.weight.device();
        let both_halves = KeptUnits::concat([kept, &kept.shifted(c)]);
        let depthwise = Conv1d {
            weight: param(keep(self.depthwise.weight.val(), 0, kept, true)),
            bias: self
                .depthwise
                .bias
                .as_ref()
                .map(|b| param(keep(b.val(), 0, kept, false))),
            groups: kept.len(),
            ..self.depthwise.clone()
        };
        let bn = &self.batch_norm;
        let batch_norm = BatchNorm {
            gamma: param(keep(bn.gamma.val(), 0, kept, false)),
            beta: param(keep(bn.beta.val(), 0, kept, false)),
            running_mean: RunningState::new(keep(bn.running_mean.value(), 0, kept, false)),
            running_var: RunningState::new(keep(bn.running_var.value(), 0, kept, false)),
            ..bn.clone()
        };
        let mut removed = vec![1.0f32; c];
        for &i in &kept.index {
            removed[i] = 0.0;
        }
        let removed = Tensor::<1>::from_data(TensorData::new(removed, [c]), &device);
        let leak = (self.gated_off_activations() * removed)
            .reshape([1, c])
            .matmul(self.pointwise_out.weight.val()); // [1, d]
        let mut pointwise_out = resize_linear(
            &self.pointwise_out,
            Some(Side {
                units: kept,
                scaled: false,
            }),
            None,
        );
        let d = leak.dims()[1];
        pointwise_out.bias = pointwise_out.bias.map(|b| param(b.val() + leak.reshape([d])));
        ConvModule {
            norm: self.norm.clone(),
            pointwise_in: resize_linear(
                &self.pointwise_in,
                None,
                Some(Side {
                    units: &both_halves,
                    scaled: false,
                }),
            ),
            depthwise,
            batch_norm,
            pointwise_out: scale_linear(pointwise_out, module_scale),
            dropout: self.dropout.clone(),
        }
    }

    /// `[c]`: magnitude score of each channel, `‖W_in[:, c]‖ · ‖kernel_c‖ · ‖W_out[c, :]‖`.
    pub fn unit_norms(&self) -> Tensor<1> {
        let c = self.channels();
        let w_in = self.pointwise_in.weight.val().narrow(1, 0, c); // the GLU's value half [d, c]
        let incoming = w_in.powf_scalar(2.0).sum_dim(0).sqrt().reshape([c]);
        let kernel = self
            .depthwise
            .weight
            .val()
            .powf_scalar(2.0)
            .sum_dim(2)
            .sqrt()
            .reshape([c]);
        let outgoing = self
            .pointwise_out
            .weight
            .val()
            .powf_scalar(2.0)
            .sum_dim(1)
            .sqrt()
            .reshape([c]);
        incoming * kernel * outgoing
    }
}
