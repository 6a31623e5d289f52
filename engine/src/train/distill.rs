//! Layer-wise distillation from an unpruned teacher (Jiang et al. 2023, arXiv 2305.19549):
//! `a_kl · KL(teacher CTC posteriors ‖ student) + a_layer · Σ_i MSE(W_i h_s(i), h_t(i))`.
//!
//! Layer mapping (ours): the student keeps every block (pruning removes units and modules, not
//! blocks), so student block `i` is matched with teacher block `i`. Each `W_i` is a learned
//! `d × d` map, initialised to the identity so distillation starts from a plain MSE.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::model::ConformerOutput;

/// Weights of the distillation terms; the teacher is named by path so a resumed run can reload it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillConfig {
    /// Checkpoint of the unpruned teacher (same preset).
    pub teacher: String,
    pub kl_weight: f64,
    pub layer_weight: f64,
}

impl Default for DistillConfig {
    /// Both terms at weight 1, beside the CTC loss (as the CLI's --kl-weight and
    /// --layer-weight default); the teacher is for the caller to name.
    fn default() -> Self {
        Self {
            teacher: String::new(),
            kl_weight: 1.0,
            layer_weight: 1.0,
        }
    }
}

/// The learned maps `W_i`, one per block.
#[derive(Module, Debug)]
pub struct LayerMaps {
    maps: Vec<Linear>,
}

impl LayerMaps {
    pub fn new(blocks: usize, d_model: usize, device: &Device) -> Self {
        let identity = || Linear {
            weight: Param::from_tensor(Tensor::eye(d_model, device)),
            bias: Some(Param::from_tensor(Tensor::zeros([d_model], device))),
        };
        Self {
            maps: (0..blocks).map(|_| identity()).collect(),
        }
    }

    /// The distillation loss, `[1]`. `valid` is `[b, s, 1]`: 1 on real frames, 0 on padding.
    pub fn loss(
        &self,
        config: &DistillConfig,
        student: &ConformerOutput,
        teacher: &ConformerOutput,
        valid: Tensor<3>,
    ) -> Tensor<1> {
        let frames = valid.clone().sum().clamp_min(1.0); // [1]
        let log_p_student = log_softmax(student.logits.clone(), 2); // [b, s, v]
        let log_p_teacher = log_softmax(teacher.logits.clone().detach(), 2);
        let kl = (log_p_teacher.clone().exp() * (log_p_teacher - log_p_student)).sum_dim(2); // [b, s, 1]
        let kl = (kl * valid.clone()).sum() / frames.clone();
        let d = student.hidden.first().map_or(1, |h| h.dims()[2]) as f64;
        let mut mse = Tensor::<1>::zeros([1], &valid.device());
        for ((map, hs), ht) in self.maps.iter().zip(&student.hidden).zip(&teacher.hidden) {
            let diff = map.forward(hs.clone()) - ht.clone().detach(); // [b, s, d]
            mse = mse + (diff.powf_scalar(2.0) * valid.clone()).sum() / frames.clone().mul_scalar(d);
        }
        kl.mul_scalar(config.kl_weight) + mse.mul_scalar(config.layer_weight)
    }
}

/// `[b, s, 1]`: 1 on each utterance's first `lengths[i]` frames, 0 after.
pub fn valid_frames(lengths: &[usize], frames: usize, device: &Device) -> Tensor<3> {
    let data: Vec<f32> = lengths
        .iter()
        .flat_map(|&n| (0..frames).map(move |t| if t < n { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_data(TensorData::new(data, [lengths.len(), frames, 1]), device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(logits: Vec<f32>, hidden: Vec<f32>, device: &Device) -> ConformerOutput {
        ConformerOutput {
            logits: Tensor::from_data(TensorData::new(logits, [1, 2, 2]), device),
            lengths: vec![1],
            hidden: vec![Tensor::from_data(TensorData::new(hidden, [1, 2, 2]), device)],
        }
    }

    #[test]
    fn loss_is_the_closed_form_kl_plus_mse_over_valid_frames() {
        let device = Device::flex();
        let config = DistillConfig {
            teacher: String::new(),
            kl_weight: 1.0,
            layer_weight: 2.0,
        };
        let maps = LayerMaps::new(1, 2, &device);
        // Frame 0 is valid, frame 1 is padding (its values must not matter).
        let student = output(vec![0.0, 0.0, 9.0, -9.0], vec![1.0, 2.0, 50.0, 50.0], &device);
        let teacher = output(vec![(3.0f32).ln(), 0.0, 0.0, 0.0], vec![1.0, 4.0, 0.0, 0.0], &device);
        let got: f32 = maps
            .loss(&config, &student, &teacher, valid_frames(&[1], 2, &device))
            .into_scalar();
        // Teacher (0.75, 0.25) vs student (0.5, 0.5): KL = 0.75 ln 1.5 + 0.25 ln 0.5.
        let kl = 0.75 * 1.5f32.ln() + 0.25 * 0.5f32.ln();
        // Identity map: mean over d = 2 of (1−1)² and (2−4)² = 2, weighted by 2.
        let expected = kl + 2.0 * 2.0;
        assert!((got - expected).abs() < 1e-5, "{got} vs {expected}");
    }
}
