//! What a (pruned) model costs: exact parameter count and FLOPs per second of audio, from its
//! configuration and block shapes alone (no weights needed).

use serde::{Deserialize, Serialize};

use crate::audio::FbankConfig;
use crate::model::{BlockShape, ConformerConfig, ConvSubsampling};

/// Parameter counts, total and by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParamCount {
    pub subsampling: usize,
    pub blocks: usize,
    pub head: usize,
}

impl ParamCount {
    /// Saturating: counts read from a manifest may be anything, and a message quoting their
    /// total must not overflow.
    pub fn total(&self) -> usize {
        self.subsampling.saturating_add(self.blocks).saturating_add(self.head)
    }

    /// The encoder: everything but the CTC head.
    pub fn encoder(&self) -> usize {
        self.subsampling.saturating_add(self.blocks)
    }
}

fn linear(inputs: usize, outputs: usize) -> usize {
    inputs * outputs + outputs
}

/// Parameters of one block of `shape`, counted as burn's `num_params` counts them.
pub fn block_params(config: &ConformerConfig, shape: &BlockShape) -> usize {
    let d = config.d_model;
    let norm = 2 * d;
    let ffn = |u: usize| if u == 0 { 0 } else { norm + linear(d, u) + linear(u, d) };
    let (q, v): (usize, usize) = (shape.query_widths.iter().sum(), shape.value_widths.iter().sum());
    let heads = shape.value_widths.len();
    let attention = if heads == 0 {
        0
    } else {
        norm + 2 * linear(d, q) + linear(d, v) + linear(v, d) + (2 * config.max_rel_distance + 1) * heads
    };
    let c = shape.conv_channels;
    // Depthwise kernel and bias, BatchNorm's gamma, beta, running mean and variance.
    let conv = if c == 0 {
        0
    } else {
        norm + linear(d, 2 * c) + (c * config.conv_kernel + c) + 4 * c + linear(c, d)
    };
    let removed_outputs = if shape.present().contains(&false) { 4 * d } else { 0 };
    ffn(shape.ffn1_hidden) + attention + conv + ffn(shape.ffn2_hidden) + norm + removed_outputs
}

/// Exact parameter count of `config` with every block in `shapes`.
pub fn param_count(config: &ConformerConfig, shapes: &[BlockShape]) -> ParamCount {
    let (ch, d) = (config.subsampling_channels, config.d_model);
    let reduced_bins = ConvSubsampling::output_len(config.num_bins);
    let subsampling = (9 * ch + ch) + (9 * ch * ch + ch) + linear(ch * reduced_bins, d);
    ParamCount {
        subsampling,
        blocks: shapes.iter().map(|s| block_params(config, s)).sum(),
        head: linear(d, config.vocab_size),
    }
}

/// Length (seconds) of the utterance FLOPs are quoted for: attention is quadratic in length.
pub const FLOPS_REFERENCE_SECONDS: f64 = 10.0;

/// Floating-point operations (2 per multiply-add) to encode one second of audio, for
/// utterances [`FLOPS_REFERENCE_SECONDS`] long, with features at the default frame rate (every
/// preset's; the architecture alone does not say what rate its input comes at). Counts matrix
/// products and convolutions, not norms, activations or softmax.
pub fn flops_per_second(config: &ConformerConfig, shapes: &[BlockShape]) -> f64 {
    let (ch, d) = (config.subsampling_channels as f64, config.d_model as f64);
    // Each 3×3 stride-2 convolution halves time and frequency.
    let input_frames = FbankConfig::default().frames_per_second();
    let (t1, f1) = (
        input_frames / 2.0,
        ConvSubsampling::output_len_once(config.num_bins) as f64,
    );
    let (t2, f2) = (input_frames / 4.0, ConvSubsampling::output_len(config.num_bins) as f64);
    let subsampling = 2.0 * (t1 * f1 * ch * 9.0 + t2 * f2 * ch * ch * 9.0 + t2 * ch * f2 * d);
    let frames = t2; // subsampled frames per second
    let context = frames * FLOPS_REFERENCE_SECONDS; // keys each query attends to
    let blocks: f64 = shapes
        .iter()
        .map(|s| {
            let (q, v) = (
                s.query_widths.iter().sum::<usize>() as f64,
                s.value_widths.iter().sum::<usize>() as f64,
            );
            let (u1, u2, c) = (s.ffn1_hidden as f64, s.ffn2_hidden as f64, s.conv_channels as f64);
            let ffn = 2.0 * d * (u1 + u2);
            let projections = d * (2.0 * q + v) + v * d;
            let attention = projections + context * (q + v);
            let conv = d * 2.0 * c + c * config.conv_kernel as f64 + c * d;
            2.0 * frames * (ffn + attention + conv)
        })
        .sum();
    let head = 2.0 * frames * d * config.vocab_size as f64;
    subsampling + blocks + head
}
