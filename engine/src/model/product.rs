//! A linear layer's matrix product over a batch of utterances, as one matrix product.
//!
//! burn's `linear` on `[b, s, d]` keeps the batch axis when each utterance's rows are not a
//! multiple of its matmul tile and merging would not make the output squarer (most of our
//! shapes): the weight then broadcasts over the batch, and autodiff computes its gradient as a
//! batched product `[b, d, o]` followed by a reduction over the batch, a kernel more per layer
//! and step. Folding the utterances into the rows first (a reshape, no copy) makes the weight's
//! gradient one product `xᵀ · dy` and the input's `dy · Wᵀ`, as the layer's maths is.

use burn::nn::Linear;
use burn::prelude::*;

/// `x · weight` for `x` `[b, s, d]` and `weight` `[d, o]` → `[b, s, o]`, computed as one
/// `[b·s, d] · [d, o]` product.
pub(crate) fn product(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    let [b, s, d] = x.dims();
    let o = weight.dims()[1];
    x.reshape([b * s, d]).matmul(weight).reshape([b, s, o])
}

/// `linear` applied to `x` `[b, s, d]`, its product as [`product`] computes it.
pub(crate) fn apply_linear(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let y = product(x, linear.weight.val());
    match &linear.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}
