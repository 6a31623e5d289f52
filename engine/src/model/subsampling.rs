//! 4× convolutional subsampling: two 3×3 convolutions with stride 2 and ReLU, then a linear
//! projection of (channels × reduced mel bins) to the model width.
//!
//! Its channel count is a preset knob: at 144 channels the second convolution alone costs more
//! than a 16-block Conformer-S, so the small presets use fewer.

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;

use super::product::apply_linear;

#[derive(Config, Debug)]
pub struct ConvSubsamplingConfig {
    /// Mel bins of the input features.
    pub num_bins: usize,
    /// Channels of both convolutions.
    pub channels: usize,
    /// Output width (the model's `d_model`).
    pub d_model: usize,
}

#[derive(Module, Debug)]
pub struct ConvSubsampling {
    conv1: Conv2d,
    conv2: Conv2d,
    projection: Linear,
}

/// Length after one 3×3, stride-2 convolution without padding.
fn halve(len: usize) -> usize {
    if len < 3 { 0 } else { (len - 3) / 2 + 1 }
}

impl ConvSubsamplingConfig {
    pub fn init(&self, device: &Device) -> ConvSubsampling {
        assert!(self.num_bins >= 7, "need at least 7 mel bins to subsample twice");
        let conv = |c_in| {
            Conv2dConfig::new([c_in, self.channels], [3, 3])
                .with_stride([2, 2])
                .with_padding(PaddingConfig2d::Valid)
                .init(device)
        };
        let reduced_bins = halve(halve(self.num_bins));
        ConvSubsampling {
            conv1: conv(1),
            conv2: conv(self.channels),
            projection: LinearConfig::new(self.channels * reduced_bins, self.d_model).init(device),
        }
    }
}

impl ConvSubsampling {
    /// Output frames for `frames` input frames: two halvings, `floor((t - 1) / 2)` each.
    pub fn output_len(frames: usize) -> usize {
        halve(halve(frames))
    }

    /// Output length after the first convolution alone.
    pub fn output_len_once(frames: usize) -> usize {
        halve(frames)
    }

    /// # Shapes
    /// - `feats`: `[b, t, f]`
    /// - returns `[b, s, d]` with `s = output_len(t)`
    pub fn forward(&self, feats: Tensor<3>) -> Tensor<3> {
        let [b, t, f] = feats.dims();
        let x = feats.reshape([b, 1, t, f]); // [b, 1, t, f]
        let x = relu(self.conv1.forward(x));
        let x = relu(self.conv2.forward(x)); // [b, c, s, f/4]
        let [_, c, s, f4] = x.dims();
        let x = x.swap_dims(1, 2).reshape([b, s, c * f4]); // [b, s, c·f/4]
        apply_linear(&self.projection, x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_length_formula_matches_the_convolutions() {
        let device = Device::flex();
        let layer = ConvSubsamplingConfig::new(80, 4, 16).init(&device);
        for t in [7usize, 8, 9, 10, 11, 50, 101] {
            let out = layer.forward(Tensor::zeros([1, t, 80], &device));
            assert_eq!(out.dims(), [1, ConvSubsampling::output_len(t), 16], "t = {t}");
        }
        // Seven frames is the shortest input that yields an output frame.
        assert_eq!(ConvSubsampling::output_len(7), 1);
        assert_eq!(ConvSubsampling::output_len(6), 0);
    }
}
