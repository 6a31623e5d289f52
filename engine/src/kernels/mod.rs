//! Fused operations with hand-written backward passes: the training step's second path (see
//! `docs/architecture.md`, "Two ways to run one step"). On a cube backend (wgpu natively and in
//! the browser) each operation is a few `cubecl` kernels and its backward is written by hand;
//! everywhere else, and whenever the reference is asked for ([`OpsPath::Reference`]), the same
//! function is composed from burn's operations and differentiated by burn's autodiff. Parity
//! tests compare the two on random, padded and odd shapes (`engine/tests/fused_ops.rs`).
//!
//! The operations reach burn through a backend extension (`ops.rs`, with the `wgpu` feature):
//! one trait, implemented for the cube backend (the kernels, `cube.rs`), for autodiff (the
//! backward passes, `autodiff.rs`, joined to burn's graph by `autodiff_graph.rs`) and, in the
//! browser, for burn's fusion backend (generated: it queues them like any other operation);
//! `functions.rs` holds the tensor-level functions the model calls. `path.rs` says which way a
//! thread runs them.
//!
//! So far: LayerNorm (`layer_norm.rs`), used by every LayerNorm of the model (`model::norm`);
//! the feed-forward module's bias, Swish, gate and hidden dropout, and without the Swish the
//! attention's gated projections' bias and gate, either gate drawn there from its logits in
//! training (`swish_gate.rs`, the gate as `unit_gate.rs` hands it over); the
//! convolution module's bias, GLU, gate (drawn there too) and padding (`glu_gate.rs`), its depthwise convolution
//! (`depthwise_conv.rs`) and its BatchNorm and Swish in training (`batch_norm_swish.rs`), both
//! channels last as the module's tensors are; the attention's scale, relative-position bias, key mask,
//! softmax and dropout (`attention_softmax.rs`) and its two products per head in the
//! projections' layout, no head split or merged (`head_products.rs`); where the heads have one
//! width, its query, key and value projections as one matrix product writing the three side by
//! side (`attention_projection.rs`; the weights packed by `packed_weights.rs`), read there by the
//! per-head products (`packed_heads.rs`); each module's output bias, dropout, weight and gate added to the residual stream (`module_output.rs`); a
//! block's matrix products, whose backward pass is one dispatch for the input's and the weight's
//! gradients, and which, where a module's gate does not train, also carries that module's
//! output both ways (`product_pair.rs`); the feed-forward module's hidden product with its
//! bias, Swish, gate and dropout in one forward kernel (`gated_product.rs`); the CTC loss and
//! its gradient, the log-softmax inside (`ctc.rs`); every
//! dropout hashed from the element's position (`hashed_dropout.rs`, `kept.rs`), so no mask is
//! drawn or kept; each gate site's relaxed sample, with adaptive dropout's pull folded into its
//! backward pass (`gate_sample.rs`, settings in `gate_relaxation.rs`); and, for the flat
//! optimiser, packing gradients into one buffer and taking parameters back out as views
//! (`flat_pack.rs`, groups planned as `pack.rs` says); and writing new values into a
//! tensor's own buffer, which a recorded graph's replay needs for its inputs (`overwrite.rs`).
//! Every kernel binds at most 7 storage
//! buffers (WebGPU guarantees 8; wgpu on Metal keeps one), which is why some backward passes
//! are two kernels and some write several small gradients into one buffer handed out as views;
//! `launch.rs` holds what every launch needs.
//!
//! Floor 0: uses burn and cubecl only.

#[cfg(feature = "wgpu")]
mod activation;
#[cfg(feature = "wgpu")]
mod attention_projection;
#[cfg(feature = "wgpu")]
mod attention_softmax;
#[cfg(feature = "wgpu")]
mod autodiff;
#[cfg(feature = "wgpu")]
mod autodiff_graph;
#[cfg(feature = "wgpu")]
mod batch_norm_swish;
#[cfg(feature = "wgpu")]
mod ctc;
#[cfg(feature = "wgpu")]
mod cube;
#[cfg(feature = "wgpu")]
mod depthwise_conv;
#[cfg(feature = "wgpu")]
mod flat_pack;
#[cfg(feature = "wgpu")]
mod functions;
mod gate_relaxation;
#[cfg(feature = "wgpu")]
mod gate_sample;
#[cfg(feature = "wgpu")]
mod gated_product;
#[cfg(feature = "wgpu")]
mod glu_gate;
mod hashed_dropout;
#[cfg(feature = "wgpu")]
mod head_products;
#[cfg(feature = "wgpu")]
mod kept;
#[cfg(feature = "wgpu")]
mod launch;
#[cfg(feature = "wgpu")]
mod layer_norm;
#[cfg(feature = "wgpu")]
mod module_output;
#[cfg(feature = "wgpu")]
mod ops;
#[cfg(feature = "wgpu")]
mod overwrite;
mod pack;
#[cfg(feature = "wgpu")]
mod packed_heads;
#[cfg(feature = "wgpu")]
mod packed_weights;
mod path;
#[cfg(feature = "wgpu")]
mod product_pair;
#[cfg(feature = "wgpu")]
mod swish_gate;
mod unit_gate;

#[cfg(feature = "wgpu")]
pub use functions::{
    CtcPlan, fused_attention_softmax, fused_batch_norm_swish, fused_channel_moments, fused_ctc_loss,
    fused_depthwise_conv, fused_gate_sample, fused_head_mix, fused_head_scores, fused_layer_norm, fused_module_output,
    fused_pack, fused_packed_head_mix, fused_packed_head_scores, fused_planned_ctc_loss, fused_product,
    fused_projected_output, fused_view, overwrite, runs_fused,
};
pub use gate_relaxation::{GateDraw, GateRelaxation, logistic_draw};
pub use hashed_dropout::HashedDropout;
pub use pack::{PACK_PARTS, PackGroup};
pub use path::{OpsPath, fuses_on, ops_path, set_ops_path, with_ops_path};
pub use unit_gate::UnitGate;
#[cfg(feature = "wgpu")]
pub use unit_gate::{
    fused_attention_projection, fused_bias_gate, fused_gated_swish_product, fused_glu_gate, fused_swish_gate,
};

/// Without the `wgpu` feature no backend has the fused operations: [`fuses_on`] is false on
/// every device, so the model never calls the functions below.
#[cfg(not(feature = "wgpu"))]
mod absent {
    use burn::prelude::*;

    pub fn runs_fused(_device: &Device) -> bool {
        false
    }

    pub fn fused_layer_norm<const D: usize>(_: Tensor<D>, _: Tensor<1>, _: Tensor<1>, _: f32) -> Tensor<D> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_gated_swish_product(
        _: Tensor<3>,
        _: Tensor<2>,
        _: Tensor<1>,
        _: super::UnitGate,
        _: super::HashedDropout,
    ) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_swish_gate(_: Tensor<3>, _: Tensor<1>, _: super::UnitGate, _: super::HashedDropout) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_bias_gate(_: Tensor<3>, _: Tensor<1>, _: super::UnitGate) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_depthwise_conv(_: Tensor<3>, _: Tensor<3>, _: Tensor<1>) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_gate_sample(_: Tensor<1>, _: Tensor<2>, _: super::GateRelaxation) -> Tensor<2> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_glu_gate(_: Tensor<3>, _: Tensor<1>, _: super::UnitGate, _: Tensor<2>) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_channel_moments(_: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_batch_norm_swish(
        _: Tensor<3>,
        _: Tensor<1>,
        _: Tensor<1>,
        _: Tensor<1>,
        _: Tensor<1>,
        _: f32,
    ) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_attention_softmax(
        _: Tensor<4>,
        _: Tensor<2>,
        _: Tensor<2>,
        _: f32,
        _: super::HashedDropout,
    ) -> Tensor<4> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_head_scores(_: Tensor<3>, _: Tensor<3>, _: usize) -> Tensor<4> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_head_mix(_: Tensor<4>, _: Tensor<3>) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_attention_projection(
        _: Tensor<3>,
        _: [Tensor<2>; 3],
        _: [Tensor<1>; 3],
        _: Option<super::UnitGate>,
        _: Option<super::UnitGate>,
    ) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_packed_head_scores(_: Tensor<3>, _: usize) -> Tensor<4> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_packed_head_mix(_: Tensor<4>, _: Tensor<3>) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_module_output(
        _: Tensor<3>,
        _: Tensor<3>,
        _: Tensor<1>,
        _: Tensor<3>,
        _: super::HashedDropout,
    ) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_pack(
        _: Tensor<1>,
        _: Vec<burn::backend::tensor::FloatTensor<burn::backend::Dispatch>>,
        _: super::PackGroup,
    ) -> Tensor<1> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_product(_: Tensor<2>, _: Tensor<2>) -> Tensor<2> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_projected_output(
        _: Tensor<3>,
        _: Tensor<3>,
        _: Tensor<2>,
        _: Tensor<1>,
        _: Tensor<3>,
        _: super::HashedDropout,
    ) -> Tensor<3> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_ctc_loss(_: Tensor<3>, _: &[i64], _: usize, _: &[usize], _: &[usize]) -> Option<Tensor<1>> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    /// Never made: without the wgpu feature no device takes the fused loss.
    pub struct CtcPlan;

    impl CtcPlan {
        pub fn new(_: &[i64], _: usize, _: &[usize], _: &[usize], _: &Device) -> Option<Self> {
            unreachable!("built without the wgpu feature, no device runs fused operations")
        }
    }

    pub fn fused_planned_ctc_loss(_: Tensor<3>, _: &CtcPlan) -> Tensor<1> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn overwrite<const D: usize>(_: &Tensor<D>, _: Vec<f32>) {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }

    pub fn fused_view(_: Tensor<1>, _: usize, _: usize) -> Tensor<1> {
        unreachable!("built without the wgpu feature, no device runs fused operations")
    }
}
#[cfg(not(feature = "wgpu"))]
pub use absent::{
    CtcPlan, fused_attention_projection, fused_attention_softmax, fused_batch_norm_swish, fused_bias_gate,
    fused_channel_moments, fused_ctc_loss, fused_depthwise_conv, fused_gate_sample, fused_gated_swish_product,
    fused_glu_gate, fused_head_mix, fused_head_scores, fused_layer_norm, fused_module_output, fused_pack,
    fused_packed_head_mix, fused_packed_head_scores, fused_planned_ctc_loss, fused_product, fused_projected_output,
    fused_swish_gate, fused_view, overwrite, runs_fused,
};
