//! A unit gate as the model hands it to the layer it gates, for one forward pass, and the fused
//! operations of the layers that take one (the feed-forward module's hidden layer, the
//! attention's gated projections, the convolution module's GLU), which draw a drawn gate
//! themselves.

use burn::prelude::*;

use super::gate_relaxation::GateDraw;

/// The gate of a site's units: its values `[rows, 1, u]` (one row per utterance, or one shared),
/// or, in training on the fused path, a relaxed sample still to be drawn from the logits `[u]`
/// by the kernel that uses it (`swish_gate.rs`, `glu_gate.rs`), so that the sample is never a
/// tensor of its own and its backward pass no kernel of its own.
#[derive(Debug, Clone)]
pub enum UnitGate {
    Values(Tensor<3>),
    Drawn { logits: Tensor<1>, draw: GateDraw },
}

impl UnitGate {
    /// The values `[rows, 1, u]`, for a layer that cannot draw the gate itself: a drawn gate is
    /// sampled by the fused sampler (a kernel, and one more backward) from the same draws.
    pub fn values(self) -> Tensor<3> {
        match self {
            Self::Values(values) => values,
            Self::Drawn { logits, draw } => sampled(logits, draw),
        }
    }
}

/// A drawn gate's values from the fused sampler.
#[cfg(feature = "wgpu")]
fn sampled(logits: Tensor<1>, draw: GateDraw) -> Tensor<3> {
    let units = logits.dims()[0];
    let noise = TensorData::new(draw.noise(units), [draw.rows, units]);
    let noise = Tensor::<2>::from_data(noise, &logits.device());
    super::functions::fused_gate_sample(logits, noise, draw.relaxation).reshape([draw.rows, 1, units])
}

#[cfg(not(feature = "wgpu"))]
fn sampled(_: Tensor<1>, _: GateDraw) -> Tensor<3> {
    unreachable!("gates are drawn only on the fused path, which needs the wgpu feature")
}

impl From<Tensor<3>> for UnitGate {
    fn from(values: Tensor<3>) -> Self {
        Self::Values(values)
    }
}

#[cfg(feature = "wgpu")]
pub use fused::{
    fused_attention_projection, fused_bias_gate, fused_gated_swish_product, fused_glu_gate, fused_swish_gate,
};

#[cfg(feature = "wgpu")]
mod fused {
    use burn::backend::Dispatch;
    use burn::backend::tensor::FloatTensor;
    use burn::prelude::*;

    use super::UnitGate;
    use crate::kernels::activation::GateActivation;
    use crate::kernels::attention_projection::{ProjectionGate, ProjectionGates};
    use crate::kernels::gate_relaxation::GateDraw;
    use crate::kernels::hashed_dropout::HashedDropout;
    use crate::kernels::ops::FusedOps;

    /// `drop(swish(pre + bias) · gate)`, fused: one kernel forward, one backward, the dropout's
    /// mask never made, a drawn gate sampled inside both. `pre` is `[batch, frames, units]` (a
    /// matrix product without its bias), `bias` `[units]`, `gate` of `[batch or 1, 1, units]`. Only
    /// for tensors on a cube backend (`kernels::runs_fused`).
    pub fn fused_swish_gate(pre: Tensor<3>, bias: Tensor<1>, gate: UnitGate, dropout: HashedDropout) -> Tensor<3> {
        bias_gate(pre, bias, gate, GateActivation::Swish, dropout)
    }

    /// [`fused_swish_gate`] with its matrix product: `drop(swish(input · weight + bias) ·
    /// gate)`, `input` `[batch, frames, d]`, `weight` `[d, units]`: one dispatch forward (which
    /// also keeps the product for the backward pass), two backward (the swish gate's, then the
    /// product pair's). Only for tensors on a cube backend (`kernels::runs_fused`).
    pub fn fused_gated_swish_product(
        input: Tensor<3>,
        weight: Tensor<2>,
        bias: Tensor<1>,
        gate: UnitGate,
        dropout: HashedDropout,
    ) -> Tensor<3> {
        let (gate, drawn) = gate.into_dispatch();
        let (output, _product) = Dispatch::fused_gated_product(
            input.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            gate,
            GateActivation::Swish,
            dropout,
            drawn,
        );
        Tensor::from_dispatch(output)
    }

    /// An attention projection after its matrix product: `(pre + bias) · gate`, fused as the
    /// feed-forward module's hidden layer is, without the activation or a dropout: one kernel
    /// forward, one backward, which also sums the bias's and the gate's gradients. `pre`
    /// `[batch, frames, units]`, `bias` `[units]`, `gate` of `[batch or 1, 1, units]`. Only for
    /// tensors on a cube backend (`kernels::runs_fused`).
    pub fn fused_bias_gate(pre: Tensor<3>, bias: Tensor<1>, gate: UnitGate) -> Tensor<3> {
        bias_gate(pre, bias, gate, GateActivation::Identity, HashedDropout::none(1.0))
    }

    fn bias_gate(
        pre: Tensor<3>,
        bias: Tensor<1>,
        gate: UnitGate,
        activation: GateActivation,
        dropout: HashedDropout,
    ) -> Tensor<3> {
        let (gate, drawn) = gate.into_dispatch();
        Tensor::from_dispatch(Dispatch::fused_bias_gate(
            pre.into_dispatch(),
            bias.into_dispatch(),
            gate,
            activation,
            dropout,
            drawn,
        ))
    }

    /// The convolution module's `glu(pre + bias) · gate`, padded frames zeroed, fused: one kernel
    /// forward, two backward, no slices, a drawn gate sampled inside both. `pre` is
    /// `[batch, frames, 2c]` (a matrix product without its bias), `bias` `[2c]`, `gate` of
    /// `[batch or 1, 1, c]`, `keep` `[batch, frames]` (1 on real frames, 0 on padding). Only for
    /// tensors on a cube backend (`kernels::runs_fused`).
    pub fn fused_glu_gate(pre: Tensor<3>, bias: Tensor<1>, gate: UnitGate, keep: Tensor<2>) -> Tensor<3> {
        let (gate, drawn) = gate.into_dispatch();
        Tensor::from_dispatch(Dispatch::fused_glu_gate(
            pre.into_dispatch(),
            bias.into_dispatch(),
            gate,
            keep.into_dispatch(),
            drawn,
        ))
    }

    /// The attention's query, key and value projections of `input` `[b, s, d]` (`weights`
    /// `[d, w]` and `biases` `[w]` in that order), fused: one matrix product with the three
    /// side by side, the query and the value times their gates (a drawn gate drawn there).
    /// Returns the packed `[b, s, 3w]`, each row's query, key and value side by side, for
    /// [`fused_packed_head_scores`](crate::kernels::fused_packed_head_scores) and
    /// [`fused_packed_head_mix`](crate::kernels::fused_packed_head_mix). Three kernels
    /// forward, three backward (four where the weights' gradients cannot be views). Only for
    /// tensors on a cube backend (`kernels::runs_fused`).
    pub fn fused_attention_projection(
        input: Tensor<3>,
        weights: [Tensor<2>; 3],
        biases: [Tensor<1>; 3],
        query_gate: Option<UnitGate>,
        value_gate: Option<UnitGate>,
    ) -> Tensor<3> {
        let device = input.device();
        let (gate_query, query) = projection_gate(query_gate, &device);
        let (gate_value, value) = projection_gate(value_gate, &device);
        let [weight_query, weight_key, weight_value] = weights.map(Tensor::into_dispatch);
        let [bias_query, bias_key, bias_value] = biases.map(Tensor::into_dispatch);
        let (packed, _z, _packed_weights) = Dispatch::fused_attention_projection(
            input.into_dispatch(),
            weight_query,
            weight_key,
            weight_value,
            bias_query,
            bias_key,
            bias_value,
            gate_query,
            gate_value,
            ProjectionGates { query, value },
        );
        Tensor::from_dispatch(packed)
    }

    /// A projection's gate as the fused projection takes it; an ungated one's tensor is an
    /// unread placeholder (allocated, never written: no kernel).
    fn projection_gate(gate: Option<UnitGate>, device: &Device) -> (FloatTensor<Dispatch>, ProjectionGate) {
        match gate {
            None => (Tensor::<1>::empty([1], device).into_dispatch(), ProjectionGate::Ungated),
            Some(UnitGate::Values(values)) => (values.into_dispatch(), ProjectionGate::Values),
            Some(UnitGate::Drawn { logits, draw }) => (logits.into_dispatch(), ProjectionGate::Drawn(draw)),
        }
    }

    impl UnitGate {
        /// What a fused operation takes for the gate: its values, or its logits with the draw.
        fn into_dispatch(self) -> (FloatTensor<Dispatch>, Option<GateDraw>) {
            match self {
                UnitGate::Values(values) => (values.into_dispatch(), None),
                UnitGate::Drawn { logits, draw } => (logits.into_dispatch(), Some(draw)),
            }
        }
    }
}
