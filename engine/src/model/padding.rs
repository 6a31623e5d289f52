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
