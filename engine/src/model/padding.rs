//! Masks for padded frames, built on the host from lengths (no device read-back needed).

use burn::prelude::*;

/// `[b, s]` mask that is `true` on padding (frames at or past each utterance's length).
pub fn frame_mask(lengths: &[usize], max_len: usize, device: &Device) -> Tensor<2, Bool> {
    let flags: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..max_len).map(move |t| t >= len))
        .collect();
    Tensor::from_bool(TensorData::new(flags, [lengths.len(), max_len]), device)
}

/// A batch's padded frames in the two forms the modules use, both uploaded from the host once
/// per forward pass: `padded` (`true` on padding) for burn's masking, and `keep` (1 on real
/// frames, 0 on padding) for the fused kernels. Made from `padded` in every attention and
/// convolution module instead, the float form cost two kernels a module.
#[derive(Debug, Clone)]
pub struct Padding {
    /// `[b, s]`, `true` on padding.
    pub padded: Tensor<2, Bool>,
    /// `[b, s]`, 1 on real frames and 0 on padding.
    pub keep: Tensor<2>,
    /// `[1, 1, 1]` of 1: the gate the fused module output takes for a module without one
    /// (`model::add_module_output`), uploaded with the masks rather than made by a fill kernel
    /// (or uploaded) at each of a pass's modules.
    pub no_gate: Tensor<3>,
}

impl Padding {
    /// The padding of utterances of `lengths` frames in a batch `max_len` frames long.
    pub fn new(lengths: &[usize], max_len: usize, device: &Device) -> Self {
        let keep: Vec<f32> = lengths
            .iter()
            .flat_map(|&len| (0..max_len).map(move |t| if t < len { 1.0 } else { 0.0 }))
            .collect();
        Self {
            padded: frame_mask(lengths, max_len, device),
            keep: Tensor::from_data(TensorData::new(keep, [lengths.len(), max_len]), device),
            no_gate: Tensor::from_data(TensorData::new(vec![1.0_f32], [1, 1, 1]), device),
        }
    }
}
