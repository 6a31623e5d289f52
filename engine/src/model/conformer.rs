//! The whole model: subsampling → dropout → Conformer blocks → linear CTC head, and its presets.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::dropout::dropout;
use super::product::apply_linear;
use super::{
    BlockKeep, BlockMasks, BlockShape, ConformerBlock, ConformerBlockConfig, ConvModule, ConvSubsampling,
    ConvSubsamplingConfig, Padding,
};

#[derive(Config, Debug, PartialEq)]
pub struct ConformerConfig {
    /// Mel bins of the input features.
    pub num_bins: usize,
    /// Output classes including the CTC blank.
    pub vocab_size: usize,
    /// Model width `d`.
    pub d_model: usize,
    pub num_blocks: usize,
    pub num_heads: usize,
    /// Hidden units of each feed-forward module.
    pub d_ff: usize,
    /// Depthwise convolution kernel size.
    pub conv_kernel: usize,
    /// Channels of the two subsampling convolutions.
    pub subsampling_channels: usize,
    /// Relative distances beyond ±this (in subsampled frames, 40 ms each) share one bias.
    #[config(default = 64)]
    pub max_rel_distance: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Per-block widths after pruning (`None`: every block dense).
    #[config(default = "None")]
    pub block_shapes: Option<Vec<BlockShape>>,
}

/// Named model sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// About 1.3 M parameters: trains in minutes on a CPU or in a browser.
    Tiny,
    /// Conformer-S-like: 16 blocks, d = 144, 4 heads, FFN 576 (≈ 9.9 M).
    Small,
    /// d = 256, 16 blocks, 4 heads, FFN 1024 (≈ 30 M).
    Medium,
}

impl Preset {
    pub const ALL: [Preset; 3] = [Preset::Tiny, Preset::Small, Preset::Medium];

    pub fn name(self) -> &'static str {
        match self {
            Preset::Tiny => "tiny",
            Preset::Small => "small",
            Preset::Medium => "medium",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The model configuration of this preset for `num_bins` features and `vocab_size` classes.
    pub fn config(self, num_bins: usize, vocab_size: usize) -> ConformerConfig {
        // (d_model, blocks, heads, d_ff, kernel, subsampling channels)
        let (d, n, h, ff, k, sub) = match self {
            Preset::Tiny => (96, 6, 4, 384, 15, 32),
            Preset::Small => (144, 16, 4, 576, 31, 64),
            Preset::Medium => (256, 16, 4, 1024, 31, 128),
        };
        ConformerConfig::new(num_bins, vocab_size, d, n, h, ff, k, sub)
    }
}

/// Model output: CTC logits and the valid length of each sequence.
#[derive(Debug, Clone)]
pub struct ConformerOutput {
    /// `[b, s, v]` unnormalised scores.
    pub logits: Tensor<3>,
    /// Valid subsampled frames per utterance.
    pub lengths: Vec<usize>,
    /// Each block's output `[b, s, d]`, first to last (for layer-wise distillation).
    pub hidden: Vec<Tensor<3>>,
}

#[derive(Module, Debug)]
pub struct Conformer {
    pub subsampling: ConvSubsampling,
    dropout: Dropout,
    pub blocks: Vec<ConformerBlock>,
    pub head: Linear,
}

impl ConformerConfig {
    /// Every block's widths as this config builds them: the pruned shapes, or dense ones.
    pub fn shapes(&self) -> Vec<BlockShape> {
        self.block_shapes
            .clone()
            .unwrap_or_else(|| vec![BlockShape::dense(self.d_model, self.num_heads, self.d_ff); self.num_blocks])
    }

    pub fn init(&self, device: &Device) -> Conformer {
        assert!(self.num_blocks > 0, "a Conformer needs at least one block");
        assert!(self.vocab_size > 1, "CTC needs the blank and at least one symbol");
        if let Some(shapes) = &self.block_shapes {
            assert_eq!(shapes.len(), self.num_blocks, "one shape per block");
        }
        let block = |i: usize| {
            ConformerBlockConfig::new(self.d_model, self.num_heads, self.d_ff, self.conv_kernel)
                .with_max_rel_distance(self.max_rel_distance)
                .with_dropout(self.dropout)
                .with_shape(self.block_shapes.as_ref().map(|shapes| shapes[i].clone()))
                .init(device)
        };
        Conformer {
            subsampling: ConvSubsamplingConfig::new(self.num_bins, self.subsampling_channels, self.d_model)
                .init(device),
            dropout: DropoutConfig::new(self.dropout).init(),
            blocks: (0..self.num_blocks).map(block).collect(),
            head: LinearConfig::new(self.d_model, self.vocab_size).init(device),
        }
    }
}

impl Conformer {
    /// # Shapes
    /// - `feats`: `[b, t, f]` normalised features, zero-padded
    /// - `frame_lengths`: valid input frames per utterance (host memory: no device read-back)
    /// - returns logits `[b, s, v]` with `s = ConvSubsampling::output_len(t)`
    pub fn forward(&self, feats: Tensor<3>, frame_lengths: &[usize]) -> ConformerOutput {
        self.forward_gated(feats, frame_lengths, &[])
    }

    /// The forward pass with pruning gates: `masks[i]` gates block `i` (an empty slice: none).
    ///
    /// # Shapes
    /// as [`Conformer::forward`]; see [`BlockMasks`] for the masks.
    pub fn forward_gated(&self, feats: Tensor<3>, frame_lengths: &[usize], masks: &[BlockMasks]) -> ConformerOutput {
        let frames = feats.dims()[1];
        let (padding, lengths) = Self::subsampled_padding(frame_lengths, frames, &feats.device());
        self.forward_padded(feats, &padding, lengths, masks)
    }

    /// The padding after the subsampling of a batch of `frame_lengths` feature frames padded to
    /// `frames`, and each utterance's length there: what [`Conformer::forward_padded`] takes. Its
    /// uploads are all a pass makes, so a pass given them can be recorded as a graph.
    pub fn subsampled_padding(frame_lengths: &[usize], frames: usize, device: &Device) -> (Padding, Vec<usize>) {
        let s = ConvSubsampling::output_len(frames);
        let lengths: Vec<usize> = frame_lengths
            .iter()
            .map(|&t| ConvSubsampling::output_len(t).min(s))
            .collect();
        (Padding::new(&lengths, s, device), lengths)
    }

    /// [`Conformer::forward_gated`] with the padding made (by [`Conformer::subsampled_padding`]).
    pub fn forward_padded(
        &self,
        feats: Tensor<3>,
        padding: &Padding,
        lengths: Vec<usize>,
        masks: &[BlockMasks],
    ) -> ConformerOutput {
        assert!(
            masks.is_empty() || masks.len() == self.blocks.len(),
            "masks for {} blocks given to a model with {}",
            masks.len(),
            self.blocks.len()
        );
        let x = dropout(&self.dropout, self.subsampling.forward(feats)); // [b, s, d]
        assert_eq!(
            padding.keep.dims()[1],
            x.dims()[1],
            "the padding is for another number of frames than the subsampling gave"
        );
        let none = BlockMasks::default();
        let mut hidden = Vec::with_capacity(self.blocks.len());
        let x = self.blocks.iter().enumerate().fold(x, |x, (i, block)| {
            let y = block.forward(x, padding, masks.get(i).unwrap_or(&none));
            hidden.push(y.clone());
            y
        });
        ConformerOutput {
            logits: apply_linear(&self.head, x),
            lengths,
            hidden,
        }
    }
}

/// Every block's BatchNorm running statistics (`None` where the conv module was removed).
pub type RunningStats = Vec<Option<[Tensor<1>; 2]>>;

impl Conformer {
    /// The device the model's weights live on (its output layer's, which every model has): where
    /// its inputs go. Never a default device: a model on WebGPU is never run on the CPU by mistake.
    pub fn device(&self) -> Device {
        self.head.weight.val().device()
    }

    /// The running statistics a training forward pass will move (see [`ConvModule::running_stats`]).
    pub fn running_stats(&self) -> RunningStats {
        self.blocks
            .iter()
            .map(|b| b.conv.as_ref().map(ConvModule::running_stats))
            .collect()
    }

    /// Undoes what a discarded forward pass did to the running statistics.
    pub fn restore_running_stats(&self, saved: RunningStats) {
        for (block, stats) in self.blocks.iter().zip(saved) {
            if let (Some(conv), Some(stats)) = (&block.conv, stats) {
                conv.restore_running_stats(stats);
            }
        }
    }
}

impl Conformer {
    /// A physically smaller copy that computes what this model computes under the deterministic
    /// gates that `keep` describes (one entry per block). Runs on the device; no read-back.
    pub fn pruned(&self, keep: &[BlockKeep]) -> Conformer {
        assert_eq!(keep.len(), self.blocks.len(), "one keep-plan per block");
        Conformer {
            subsampling: self.subsampling.clone(),
            dropout: self.dropout.clone(),
            blocks: self.blocks.iter().zip(keep).map(|(b, k)| b.pruned(k)).collect(),
            head: self.head.clone(),
        }
    }

    /// Every block's current widths (what a config needs to rebuild this model).
    pub fn block_shapes(&self) -> Vec<BlockShape> {
        self.blocks.iter().map(ConformerBlock::shape).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_config() -> ConformerConfig {
        ConformerConfig::new(16, 5, 8, 2, 2, 12, 3, 2)
            .with_dropout(0.0)
            .with_max_rel_distance(4)
    }

    /// Parameters of a config counted by hand from the architecture (weights + biases + norms).
    fn closed_form_params(c: &ConformerConfig) -> usize {
        let (d, u, k, ch) = (c.d_model, c.d_ff, c.conv_kernel, c.subsampling_channels);
        let linear = |i: usize, o: usize| i * o + o;
        let layer_norm = 2 * d;
        let reduced_bins = ((c.num_bins - 1) / 2 - 1) / 2;
        let subsampling = (9 * ch + ch) + (9 * ch * ch + ch) + linear(ch * reduced_bins, d);
        let ffn = layer_norm + linear(d, u) + linear(u, d);
        let attention = layer_norm + 4 * linear(d, d) + (2 * c.max_rel_distance + 1) * c.num_heads;
        // Depthwise conv: weight d·k + bias d. BatchNorm: gamma, beta, and its running mean and
        // variance, which burn's `num_params` counts too (4·d).
        let conv = layer_norm + linear(d, 2 * d) + (d * k + d) + 4 * d + linear(d, d);
        let block = 2 * ffn + attention + conv + layer_norm;
        subsampling + c.num_blocks * block + linear(d, c.vocab_size)
    }

    #[test]
    fn parameter_counts_match_the_closed_form_and_preset_ranges() {
        let device = Device::flex();
        let mut counts = Vec::new();
        for preset in Preset::ALL {
            let config = preset.config(80, 29);
            let count = config.init(&device).num_params();
            assert_eq!(count, closed_form_params(&config), "{}", preset.name());
            counts.push(count);
        }
        assert!((1_000_000..=2_000_000).contains(&counts[0]), "tiny has {}", counts[0]);
        assert!((7_500_000..=10_500_000).contains(&counts[1]), "small has {}", counts[1]);
        assert!(
            (25_000_000..=32_000_000).contains(&counts[2]),
            "medium has {}",
            counts[2]
        );
    }

    #[test]
    fn padding_does_not_change_the_unpadded_outputs() {
        let device = Device::flex();
        device.seed(3);
        let model = test_config().init(&device).valid();
        let feats = Tensor::<3>::random([1, 23, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let alone = model.forward(feats.clone(), &[23]);
        let padded_input = Tensor::cat(vec![feats, Tensor::full([1, 17, 16], 7.0, &device)], 1);
        let padded = model.forward(padded_input, &[23]);
        let s = alone.lengths[0];
        assert_eq!(padded.lengths[0], s);
        let a: Vec<f32> = alone.logits.try_into_vec_as().unwrap();
        let b: Vec<f32> = padded.logits.slice([0..1, 0..s, 0..5]).try_into_vec_as().unwrap();
        let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-4, "max difference {worst}");
    }
}
