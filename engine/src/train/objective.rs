//! The CTC objective.

use burn::nn::loss::{CTCLossConfig, Reduction};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::data::Batch;
use crate::kernels;
use crate::text::BLANK;

/// Mean CTC loss per target token (PyTorch's `reduction = "mean"`), `[1]`.
///
/// # Shapes
/// - `logits`: `[b, s, v]`
/// - `targets`: `[b, l]` padded with the blank
/// - `lengths`, `target_lengths`: host memory, one per utterance
///
/// Lengths must be feasible (checked on the host when batches are made): burn's debug-build
/// length assertions read tensors back synchronously, which WebGPU forbids.
pub fn ctc_loss(logits: Tensor<3>, targets: Tensor<2, Int>, lengths: &[usize], target_lengths: &[usize]) -> Tensor<1> {
    let device = logits.device();
    let log_probs = log_softmax(logits, 2).swap_dims(0, 1); // [s, b, v]: burn's CTC is time-major
    let to_tensor = |v: &[usize]| {
        let data: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::<1, Int>::from_data(TensorData::new(data, [v.len()]), &device)
    };
    let ctc = CTCLossConfig::new().with_blank(BLANK).with_zero_infinity(true).init();
    ctc.forward_with_reduction(
        log_probs,
        targets,
        to_tensor(lengths),
        to_tensor(target_lengths),
        Reduction::Mean,
    )
}

/// The CTC loss of a prepared batch, what it reads uploaded before the forward pass (so that the
/// pass itself uploads nothing and could be recorded): fused (`kernels::fused_planned_ctc_loss`:
/// two dispatches and a mean instead of about 38) where this thread's path and the device allow
/// it and the targets fit its workgroup memory, burn's composed [`ctc_loss`] otherwise.
pub enum BatchCtc {
    Fused(kernels::CtcPlan),
    /// The padded targets on the device (`[b, l]`).
    Composed(Tensor<2, Int>),
}

impl BatchCtc {
    /// `batch` has the targets on the host (`targets` is them on `device`); `lengths` are the
    /// utterances' frames after the subsampling.
    pub fn new(batch: &Batch, lengths: &[usize], targets: Tensor<2, Int>, device: &Device) -> Self {
        if kernels::fuses_on(device)
            && let Some(plan) =
                kernels::CtcPlan::new(&batch.targets, batch.tokens, lengths, &batch.target_lengths, device)
        {
            return Self::Fused(plan);
        }
        Self::Composed(targets)
    }

    /// The mean loss per target token of `logits` (`[b, s, v]`) for the batch it was made for.
    pub fn loss(&self, logits: Tensor<3>, batch: &Batch, lengths: &[usize]) -> Tensor<1> {
        match self {
            Self::Fused(plan) => kernels::fused_planned_ctc_loss(logits, plan),
            Self::Composed(targets) => ctc_loss(logits, targets.clone(), lengths, &batch.target_lengths),
        }
    }
}

/// Fewest frames CTC needs to emit `tokens`: one per token plus a blank between repeats.
pub fn ctc_min_frames(tokens: &[usize]) -> usize {
    tokens.len() + tokens.windows(2).filter(|w| w[0] == w[1]).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_frames_count_repeats() {
        assert_eq!(ctc_min_frames(&[1, 2, 3]), 3);
        assert_eq!(ctc_min_frames(&[5, 5, 5]), 5);
    }

    #[test]
    fn uniform_scores_give_the_closed_form_loss() {
        // With uniform posteriors over v classes every path has probability v^-s, so the loss
        // is s·ln v − ln(number of paths). For s = 3 frames, v = 3 and target [1] the paths are
        // 1__ _1_ __1 11_ _11 111: six, so the loss is 3 ln 3 − ln 6.
        let device = Device::flex();
        let logits = Tensor::<3>::zeros([1, 3, 3], &device);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![1i64], [1, 1]), &device);
        let loss: f32 = ctc_loss(logits, targets, &[3], &[1]).into_scalar();
        let expected = 3.0 * 3f32.ln() - 6f32.ln();
        assert!((loss - expected).abs() < 1e-4, "{loss} vs {expected}");
    }
}
