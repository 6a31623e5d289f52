//! A linear layer's matrix product over a batch of utterances, as one matrix product.
//!
//! burn's `linear` on `[b, s, d]` keeps the batch axis when each utterance's rows are not a
//! multiple of its matmul tile and merging would not make the output squarer (most of our
//! shapes): the weight then broadcasts over the batch, and autodiff computes its gradient as a
//! batched product `[b, d, o]` followed by a reduction over the batch, a kernel more per layer
//! and step. Folding the utterances into the rows first (a reshape, no copy) makes the weight's
//! gradient one product `xᵀ · dy` and the input's `dy · Wᵀ`, as the layer's maths is.
//!
//! On the fused path (`kernels::fuses_on`) a block's products ([`product`]) do those two in one
//! dispatch (`kernels::fused_product`). [`apply_linear`] (the subsampling's projection, the
//! output head, the reference path) keeps burn's product: in the browser, burn's fusion folds
//! the element-wise operations around those two layers' backward products (the loss's and the
//! positional scaling's gradients) into the products' kernels, which it cannot do for a fused
//! operation; measured, the fused product there cost more dispatches than it saved.

use burn::nn::Linear;
use burn::prelude::*;

use crate::kernels;

/// `x · weight` for `x` `[b, s, d]` and `weight` `[d, o]` → `[b, s, o]`, computed as one
/// `[b·s, d] · [d, o]` product; fused where the path and the device allow.
pub(crate) fn product(x: Tensor<3>, weight: Tensor<2>) -> Tensor<3> {
    rows_product(x, weight, |rows, weight| {
        if kernels::fuses_on(&rows.device()) {
            kernels::fused_product(rows, weight)
        } else {
            rows.matmul(weight)
        }
    })
}

/// `x`'s rows `[b·s, d]` through `multiply` with `weight` `[d, o]`, back as `[b, s, o]`.
fn rows_product(
    x: Tensor<3>,
    weight: Tensor<2>,
    multiply: impl FnOnce(Tensor<2>, Tensor<2>) -> Tensor<2>,
) -> Tensor<3> {
    let [b, s, d] = x.dims();
    let o = weight.dims()[1];
    multiply(x.reshape([b * s, d]), weight).reshape([b, s, o])
}

/// `linear` applied to `x` `[b, s, d]`, as one product of its rows, always burn's (see the
/// module's header).
pub(crate) fn apply_linear(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let y = rows_product(x, linear.weight.val(), Tensor::matmul);
    match &linear.bias {
        Some(bias) => y + bias.val().unsqueeze(),
        None => y,
    }
}
