//! Where a module's output meets the residual stream: the output bias, dropout, the module's
//! weight (½ for the macaron feed-forward modules) and its gate, added to the block's input.
//!
//! Each module stops before its last matrix product and hands over a [`ModuleOutput`] (the
//! product's input and weight); the block adds it with [`add_module_output`], one fused
//! operation with the product on a device that has them (backward, one dispatch makes the
//! input's, the weight's and the bias's gradients, `kernels::fused_projected_output`), burn's
//! composed operations otherwise. The dropout here is hashed (`kernels::HashedDropout`): the
//! fused kernels compute each element's mask where they need it, and the composed path uploads
//! the same mask, so both paths drop the same elements.

use burn::nn::Dropout;
use burn::prelude::*;

use super::dropout::{apply_hashed, hashed_draw};
use super::padding::Padding;
use super::product::product;
use crate::kernels;

/// A module's output before its last matrix product: the product's `input` `[b, s, u]` and
/// `weight` `[u, d]`, the bias `[d]` and the dropout that follows them.
pub struct ModuleOutput<'a> {
    pub input: Tensor<3>,
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
    pub dropout: &'a Dropout,
}

impl ModuleOutput<'_> {
    /// The module's output on its own, `drop(input · weight + bias)` (the block adds it; this
    /// is for callers that look at one module).
    pub fn value(self) -> Tensor<3> {
        let drop = hashed_draw(self.dropout, &self.input.device(), 1.0);
        composed(product(self.input, self.weight), self.bias, drop)
    }
}

/// `residual + gate · weight · drop(pre + bias)`, with `gate` `[b or 1, 1, 1]` (none: 1) and the
/// batch's `padding` (whose constant 1 stands in for a missing gate on the fused path).
pub fn add_module_output(
    residual: Tensor<3>,
    output: ModuleOutput,
    weight: f32,
    gate: Option<Tensor<3>>,
    padding: &Padding,
) -> Tensor<3> {
    let device = output.input.device();
    let drop = hashed_draw(output.dropout, &device, weight);
    match output.bias {
        Some(bias) if kernels::fuses_on(&device) => {
            let gate = gate.unwrap_or_else(|| padding.no_gate.clone());
            kernels::fused_projected_output(residual, output.input, output.weight, bias, gate, drop)
        }
        bias => {
            let y = composed(product(output.input, output.weight), bias, drop);
            residual + gate.map_or(y.clone(), |g| y * g)
        }
    }
}

/// `drop(pre + bias)` from burn's operations, the mask made on the host.
fn composed(pre: Tensor<3>, bias: Option<Tensor<1>>, drop: kernels::HashedDropout) -> Tensor<3> {
    let y = match bias {
        Some(bias) => pre + bias.unsqueeze::<3>(),
        None => pre,
    };
    apply_hashed(y, drop)
}
