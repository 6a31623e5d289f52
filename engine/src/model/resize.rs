//! Building a smaller copy of a layer: keep some rows or columns of its weights, each scaled.
//!
//! Surgery folds a kept unit's inference scale into the weights it multiplies, so the smaller
//! layer computes exactly what the gated layer computed. Everything stays on the device (no
//! read-back), which keeps surgery usable on WebGPU, where reads are asynchronous.

use burn::module::Param;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The units of one gated vector that survive pruning, with the scale folded into each.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct KeptUnits {
    /// Indices into the original vector, ascending.
    pub index: Vec<usize>,
    /// One scale per kept unit (1.0 when nothing is folded).
    pub scale: Vec<f32>,
}

impl KeptUnits {
    /// Every one of `n` units, unscaled.
    pub fn all(n: usize) -> Self {
        Self {
            index: (0..n).collect(),
            scale: vec![1.0; n],
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The same units shifted by `offset` (a head's units inside the concatenated projection).
    pub fn shifted(&self, offset: usize) -> Self {
        Self {
            index: self.index.iter().map(|i| i + offset).collect(),
            scale: self.scale.clone(),
        }
    }

    /// Concatenation of several groups (already shifted into one index space).
    pub fn concat<'a>(groups: impl IntoIterator<Item = &'a KeptUnits>) -> Self {
        let mut out = Self::default();
        for g in groups {
            out.index.extend_from_slice(&g.index);
            out.scale.extend_from_slice(&g.scale);
        }
        out
    }

    fn index_tensor(&self, device: &Device) -> Tensor<1, Int> {
        let data: Vec<i64> = self.index.iter().map(|&i| i as i64).collect();
        Tensor::from_data(TensorData::new(data, [self.index.len()]), device)
    }

    fn scale_tensor(&self, device: &Device) -> Tensor<1> {
        Tensor::from_data(TensorData::new(self.scale.clone(), [self.scale.len()]), device)
    }
}

/// Keeps `units` along `dim` of `tensor`, multiplying each kept slice by its scale when `scaled`.
pub(crate) fn keep<const D: usize>(tensor: Tensor<D>, dim: usize, units: &KeptUnits, scaled: bool) -> Tensor<D> {
    let device = tensor.device();
    let kept = tensor.select(dim, units.index_tensor(&device));
    if !scaled {
        return kept;
    }
    let mut shape = [1usize; D];
    shape[dim] = units.len();
    kept * units.scale_tensor(&device).reshape(shape)
}

/// A parameter from a tensor built by surgery.
pub(crate) fn param<const D: usize>(tensor: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(tensor)
}

/// Which units of one side of a linear layer survive, and whether their scales fold in there.
pub(crate) struct Side<'a> {
    pub units: &'a KeptUnits,
    pub scaled: bool,
}

/// `linear` with its inputs restricted to rows of the `[in, out]` weight and its outputs to
/// columns (and bias entries). A scaled output side scales the bias too; a scaled input side
/// scales only the weight rows (the bias does not depend on the input).
pub(crate) fn resize_linear(
    linear: &burn::nn::Linear,
    inputs: Option<Side>,
    outputs: Option<Side>,
) -> burn::nn::Linear {
    let mut weight = linear.weight.val();
    let mut bias = linear.bias.as_ref().map(|b| b.val());
    if let Some(side) = inputs {
        weight = keep(weight, 0, side.units, side.scaled);
    }
    if let Some(side) = outputs {
        weight = keep(weight, 1, side.units, side.scaled);
        bias = bias.map(|b| keep(b, 0, side.units, side.scaled));
    }
    burn::nn::Linear {
        weight: param(weight),
        bias: bias.map(param),
    }
}

/// `linear` with its whole output (weight and bias) multiplied by `factor`.
pub(crate) fn scale_linear(linear: burn::nn::Linear, factor: f32) -> burn::nn::Linear {
    if factor == 1.0 {
        return linear;
    }
    burn::nn::Linear {
        weight: param(linear.weight.val().mul_scalar(factor)),
        bias: linear.bias.map(|b| param(b.val().mul_scalar(factor))),
    }
}
