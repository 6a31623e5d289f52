//! Attention heads of unequal widths, laid out at one common width.
//!
//! Surgery leaves every head its own query and value width. Running them one head at a time
//! costs a softmax, a mask and two matmuls per head, and on the CPU backend that per-operation
//! cost ate most of what the smaller heads saved. Instead, the projection weights are spread
//! out at forward time so that each head occupies `width` columns (its own, then zero columns),
//! and attention runs as one batched matmul over `[b, h, s, width]`. Zero query/key columns add
//! nothing to a logit and zero value columns meet zero rows of the output projection, so the
//! result is exactly what the compact heads compute. Only the small weight matrices are
//! rearranged, never the activations.

use burn::nn::Linear;
use burn::prelude::*;

use super::product::{apply_linear, product};
use crate::kernels::UnitGate;

/// Where each of the `heads · width` padded positions reads from in the compact concatenation
/// of heads of the given widths, on the device.
#[derive(Debug, Clone)]
pub(crate) struct PaddedHeads {
    /// The common width: the widest head.
    pub width: usize,
    pub heads: usize,
    /// `None` when every head is already `width` wide (the compact layout is the padded one);
    /// otherwise `[heads · width]` source indices (0 on padding) and 1/0 keep flags.
    gather: Option<(Tensor<1, Int>, Tensor<1>)>,
}

impl PaddedHeads {
    /// The layout of heads of `widths`; uploads its index once, and only when widths differ.
    pub fn new(widths: &[usize], device: &Device) -> Self {
        let width = widths.iter().copied().max().unwrap_or(0);
        let uniform = widths.iter().all(|&w| w == width);
        let gather = (!uniform).then(|| {
            let (mut index, mut keep) = (Vec::new(), Vec::new());
            let mut offset = 0;
            for &w in widths {
                for i in 0..width {
                    index.push(if i < w { (offset + i) as i64 } else { 0 });
                    keep.push(if i < w { 1.0f32 } else { 0.0 });
                }
                offset += w;
            }
            let n = index.len();
            (
                Tensor::<1, Int>::from_data(TensorData::new(index, [n]), device),
                Tensor::<1>::from_data(TensorData::new(keep, [n]), device),
            )
        });
        Self {
            width,
            heads: widths.len(),
            gather,
        }
    }

    /// `[n_in, Σw]` → `[n_in, heads · width]` along `dim` (0 or 1 of a matrix, 0 of a vector),
    /// zero where a head is narrower than `width`.
    fn spread<const D: usize>(&self, tensor: Tensor<D>, dim: usize) -> Tensor<D> {
        let Some((index, keep)) = &self.gather else {
            return tensor;
        };
        let mut shape = [1usize; D];
        shape[dim] = keep.dims()[0];
        tensor.select(dim, index.clone()) * keep.clone().reshape(shape)
    }

    /// `linear` (which outputs the compact heads) applied to `x`, with its output in the padded
    /// layout `[b, s, heads · width]`.
    pub fn project_into(&self, linear: &Linear, x: Tensor<3>) -> Tensor<3> {
        if self.gather.is_none() {
            return apply_linear(linear, x);
        }
        let y = product(x, self.spread(linear.weight.val(), 1));
        match &linear.bias {
            Some(bias) => y + self.spread(bias.val(), 0).unsqueeze(),
            None => y,
        }
    }

    /// `linear`'s matrix product (it outputs the compact heads) applied to `x`, without its
    /// bias, in the padded layout `[b, s, heads · width]` (the bias goes with the gate into one
    /// fused operation, [`spread_bias`](Self::spread_bias)).
    pub fn product_into(&self, linear: &Linear, x: Tensor<3>) -> Tensor<3> {
        product(x, self.spread(linear.weight.val(), 1))
    }

    /// A projection's bias `[Σw]` in the padded layout `[heads · width]`.
    pub fn spread_bias(&self, bias: Tensor<1>) -> Tensor<1> {
        self.spread(bias, 0)
    }

    /// `linear`'s weight (it reads the compact heads) as it applies to its input given in the
    /// padded layout: the rows of the missing heads' columns are zero.
    pub fn weight_from(&self, linear: &Linear) -> Tensor<2> {
        let weight = linear.weight.val();
        if self.gather.is_none() {
            weight
        } else {
            self.spread(weight, 0)
        }
    }

    /// A gate `[b or 1, 1, Σw]` on the compact heads, moved to the padded layout (its value on
    /// the padding does not matter: it multiplies zeros).
    pub fn spread_gate(&self, gate: Tensor<3>) -> Tensor<3> {
        self.spread(gate, 2)
    }

    /// [`spread_gate`](Self::spread_gate) for a gate that may still be drawn: kept as it is
    /// where the layouts agree, its values spread otherwise.
    pub fn spread_unit_gate(&self, gate: UnitGate) -> UnitGate {
        match self.gather {
            None => gate,
            Some(_) => UnitGate::Values(self.spread_gate(gate.values())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_heads_are_padded_with_zero_columns() {
        let device = Device::flex();
        let heads = PaddedHeads::new(&[2, 0, 1], &device);
        assert_eq!((heads.width, heads.heads), (2, 3));
        // Columns 0,1 belong to head 0 and column 2 to head 2.
        let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]), &device);
        let padded: Vec<f32> = heads.spread(w, 1).try_into_vec_as().unwrap();
        assert_eq!(padded, vec![1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0, 5.0, 0.0, 0.0, 6.0, 0.0]);
    }

    #[test]
    fn equal_heads_are_left_alone() {
        let heads = PaddedHeads::new(&[3, 3], &Device::flex());
        assert!(heads.gather.is_none());
        assert_eq!(heads.width * heads.heads, 6);
    }
}
