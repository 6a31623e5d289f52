//! The largest tensor one training step makes, estimated from the model's shapes and the batch:
//! what the device's largest buffer must hold.
//!
//! A device refuses a buffer over its limit (WebGPU: `maxStorageBufferBindingSize`, 128 MiB by
//! default), and burn then panics inside the step, which in the browser is a wasm trap that
//! leaves the page dead. A front door compares this estimate with its backend's limit before a
//! run starts and refuses the batch with the figures, instead.
//!
//! The estimate covers the step's few large tensors, each a product of the padded batch: the
//! first subsampling convolution's output (the largest at every preset and batch the lab
//! offers: `c` channels over half the frames and half the mel bins), the attention weights
//! (`h` heads × the subsampled length squared) and a feed-forward module's hidden layer. Each
//! is counted once, in f32; copies the kernels make of them (a layout change, a gradient) are
//! the same size, so the largest stays the largest.

use crate::model::{ConformerConfig, ConvSubsampling};

/// Bytes of one f32.
const F32: u64 = 4;

/// The largest tensor of a step, and which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LargestTensor {
    pub bytes: u64,
    /// What the tensor is, for a message ("the first subsampling convolution's output").
    pub what: &'static str,
}

/// The largest tensor of one training step of `model` on a batch of `batch_frames` padded
/// feature frames, whose longest utterance has `longest_frames` frames (a batch is padded to
/// its longest, so `batch_frames / longest_frames` utterances of that length is the worst case).
pub fn largest_step_tensor(model: &ConformerConfig, batch_frames: usize, longest_frames: usize) -> LargestTensor {
    let padded = longest_frames.clamp(1, batch_frames.max(1)) as u64;
    let utterances = (batch_frames as u64 / padded).max(1);
    let once = |n: u64| ConvSubsampling::output_len_once(n as usize) as u64;
    let subsampled = ConvSubsampling::output_len(padded as usize) as u64;
    let candidates = [
        LargestTensor {
            bytes: utterances * model.subsampling_channels as u64 * once(padded) * once(model.num_bins as u64) * F32,
            what: "the first subsampling convolution's output",
        },
        LargestTensor {
            bytes: utterances * model.num_heads as u64 * subsampled * subsampled * F32,
            what: "the attention weights",
        },
        LargestTensor {
            bytes: utterances * subsampled * model.d_ff as u64 * F32,
            what: "a feed-forward module's hidden layer",
        },
    ];
    candidates
        .into_iter()
        .max_by_key(|t| t.bytes)
        .expect("three candidates")
}

/// The most padded frames a batch may hold so that [`largest_step_tensor`] stays within
/// `limit_bytes` (whole utterances of `longest_frames`; 0 when even one does not fit).
pub fn most_batch_frames(model: &ConformerConfig, longest_frames: usize, limit_bytes: u64) -> usize {
    let longest = longest_frames.max(1);
    // Every candidate tensor is a whole number of utterances times what one takes, so the
    // largest grows in proportion to the utterances: the limit divided by one utterance's.
    let one_utterance = largest_step_tensor(model, longest, longest).bytes.max(1);
    let utterances = (limit_bytes / one_utterance).min((usize::MAX / longest) as u64);
    utterances as usize * longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Preset;
    use burn::prelude::*;

    #[test]
    fn the_subsampling_estimate_is_the_size_of_the_real_convolution_output() {
        // The first convolution of a real subsampling layer, run on the worst-case batch.
        let device = Device::flex();
        let model = Preset::Tiny.config(80, 30);
        let (utterances, frames) = (3, 101);
        let conv = burn::nn::conv::Conv2dConfig::new([1, model.subsampling_channels], [3, 3])
            .with_stride([2, 2])
            .init(&device);
        let out = conv.forward(Tensor::<4>::zeros([utterances, 1, frames, 80], &device));
        let real = out.shape().num_elements() as u64 * 4;
        let estimate = largest_step_tensor(&model, utterances * frames, frames);
        assert_eq!(estimate.bytes, real);
        assert_eq!(estimate.what, "the first subsampling convolution's output");
    }

    #[test]
    fn long_utterances_with_many_heads_make_the_attention_weights_the_largest() {
        let mut model = Preset::Tiny.config(80, 30);
        model.num_heads = 64;
        // 30 s utterances: 749 subsampled frames each.
        let largest = largest_step_tensor(&model, 6000, 3000);
        assert_eq!(largest.what, "the attention weights");
        assert_eq!(largest.bytes, 2 * 64 * 749 * 749 * 4);
    }

    #[test]
    fn the_lab_default_fits_webgpu_default_buffers_and_a_thousand_seconds_does_not() {
        let model = Preset::Tiny.config(80, 30);
        let webgpu_default = 128 << 20;
        // The lab's 16 s batch of 3 s utterances, and the 1,000 s the range check let through.
        assert!(largest_step_tensor(&model, 1600, 300).bytes < webgpu_default / 10);
        assert!(largest_step_tensor(&model, 100_000, 300).bytes > webgpu_default);
        let most = most_batch_frames(&model, 300, webgpu_default);
        assert!(largest_step_tensor(&model, most, 300).bytes <= webgpu_default);
        assert!(largest_step_tensor(&model, most + 300, 300).bytes > webgpu_default);
        assert_eq!(most % 300, 0, "whole utterances");
        assert_eq!(most_batch_frames(&model, 300, 1000), 0, "not even one utterance fits");
    }
}
