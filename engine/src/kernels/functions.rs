//! The tensor-level functions the model calls, one per fused operation: each hands its
//! tensors to burn's dispatch, which routes them to the backend's [`FusedOps`] method (those
//! of the layers that take a gate are with the gate, `unit_gate.rs`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Dispatch, DispatchDevice};
use burn::prelude::*;

use super::gate_relaxation::GateRelaxation;
use super::hashed_dropout::HashedDropout;
use super::ops::FusedOps;
use super::pack::{PACK_PARTS, PackGroup};

/// Whether tensors on `device` run the fused operations (a cube backend: wgpu natively and in
/// the browser) rather than burn's composed reference.
pub fn runs_fused(device: &Device) -> bool {
    // An autodiff device answers for the device it wraps.
    matches!(device.clone().without_autodiff().as_dispatch(), DispatchDevice::Cube(_))
}

/// LayerNorm over the last axis of `input` with scale `gamma` and shift `beta` (both the last
/// axis long), fused: one kernel forward, one backward. Only for tensors on a cube backend
/// ([`runs_fused`]); burn's `LayerNorm` is the reference elsewhere.
pub fn fused_layer_norm<const D: usize>(
    input: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f32,
) -> Tensor<D> {
    let (output, _statistics) = Dispatch::fused_layer_norm(
        input.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    );
    Tensor::from_dispatch(output)
}

/// The depthwise convolution of `input` `[batch, frames, channels]` (channels last: the
/// convolution module's own layout) with `weight` `[channels, 1, taps]` (an odd number of taps)
/// and `bias` `[channels]`, "same" zero padding: burn's grouped `Conv1d` on the transposed
/// input, without the transposes. One kernel forward, one backward. Only for tensors on a cube
/// backend ([`runs_fused`]).
pub fn fused_depthwise_conv(input: Tensor<3>, weight: Tensor<3>, bias: Tensor<1>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_depthwise_conv(
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
    ))
}

/// Each channel's mean and biased variance over the batch and frames of `input`
/// `[batch, frames, channels]`: BatchNorm's batch statistics, one kernel, not differentiated.
/// Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_channel_moments(input: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let (mean, variance) = Dispatch::fused_channel_moments(input.into_dispatch());
    (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance))
}

/// `swish(BatchNorm(input))` in training for `input` `[batch, frames, channels]` (normalised by
/// the batch's own `mean` and `variance`, from [`fused_channel_moments`]), fused: one kernel
/// forward, three backward. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_batch_norm_swish(
    input: Tensor<3>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    variance: Tensor<1>,
    epsilon: f32,
) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_batch_norm_swish(
        input.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        variance.into_dispatch(),
        epsilon,
    ))
}

/// The attention weights from the raw scores `[b, h, s, s]`: the scale, the relative-position
/// bias `[2R + 1, h]` (by clipped distance `j − i`), the mask on padded keys (`keep` `[b, s]`,
/// 0 on padding), the softmax over keys and the hashed `dropout` of the weights, fused: one
/// kernel forward, three backward, no mask. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_attention_softmax(
    scores: Tensor<4>,
    bias: Tensor<2>,
    keep: Tensor<2>,
    scale: f32,
    dropout: HashedDropout,
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::fused_attention_softmax(
        scores.into_dispatch(),
        bias.into_dispatch(),
        keep.into_dispatch(),
        scale,
        dropout,
    ))
}

/// Per head, the scores `[b, h, s, s]` of `query` against `key` (both `[b, s, h·w]`, head `h` in
/// columns `h·w .. (h + 1)·w`), read in that layout: one kernel forward, two backward. Only for
/// tensors on a cube backend ([`runs_fused`]).
pub fn fused_head_scores(query: Tensor<3>, key: Tensor<3>, heads: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::fused_head_scores(
        query.into_dispatch(),
        key.into_dispatch(),
        heads,
    ))
}

/// Per head, `value` `[b, s, h·w]` mixed by the attention `weights` `[b, h, s, s]`: the context
/// `[b, s, h·w]` with the heads merged, one kernel forward, two backward. Only for tensors on a
/// cube backend ([`runs_fused`]).
pub fn fused_head_mix(weights: Tensor<4>, value: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_head_mix(weights.into_dispatch(), value.into_dispatch()))
}

/// [`fused_head_scores`] with the query and the key read from the packed rows `[b, s, 3·h·w]`
/// of [`fused_attention_projection`](crate::kernels::fused_attention_projection): one kernel
/// forward, one backward. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_packed_head_scores(packed: Tensor<3>, heads: usize) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::fused_packed_head_scores(packed.into_dispatch(), heads))
}

/// [`fused_head_mix`] with the value read from the packed rows `[b, s, 3·h·w]`: the context
/// `[b, s, h·w]`, one kernel forward, one backward. Only for tensors on a cube backend
/// ([`runs_fused`]).
pub fn fused_packed_head_mix(weights: Tensor<4>, packed: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_packed_head_mix(
        weights.into_dispatch(),
        packed.into_dispatch(),
    ))
}

/// `residual + gate · drop(pre + bias)`, fused: one kernel forward, two backward, the mask
/// never made. `residual` and `pre` are `[batch, frames, d]` (`pre` a matrix product without its
/// bias), `bias` `[d]`, `gate` `[batch or 1, 1, 1]`. Only for tensors on a cube backend
/// ([`runs_fused`]).
pub fn fused_module_output(
    residual: Tensor<3>,
    pre: Tensor<3>,
    bias: Tensor<1>,
    gate: Tensor<3>,
    dropout: HashedDropout,
) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_module_output(
        residual.into_dispatch(),
        pre.into_dispatch(),
        bias.into_dispatch(),
        gate.into_dispatch(),
        dropout,
    ))
}

/// `residual + gate · drop(input · weight + bias)`: a module's last matrix product and
/// [`fused_module_output`] together, `input` `[batch, frames, d]`, `weight` `[d, o]`. Where the
/// gate trains (its gradient needs the product kept) the two operations run apart; otherwise the
/// backward pass is one dispatch, which computes the input's, the weight's and the bias's
/// gradients from the output's through the gate and the dropout, without writing the product's.
/// Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_projected_output(
    residual: Tensor<3>,
    input: Tensor<3>,
    weight: Tensor<2>,
    bias: Tensor<1>,
    gate: Tensor<3>,
    dropout: HashedDropout,
) -> Tensor<3> {
    if gate.is_require_grad() {
        let [b, s, d] = input.dims();
        let o = weight.dims()[1];
        let pre = fused_product(input.reshape([b * s, d]), weight).reshape([b, s, o]);
        return fused_module_output(residual, pre, bias, gate, dropout);
    }
    Tensor::from_dispatch(Dispatch::fused_projected_output(
        residual.into_dispatch(),
        input.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        gate.into_dispatch(),
        dropout,
    ))
}

/// What the fused CTC loss reads besides the logits: each utterance's frame count, target
/// length and padded target, `[batch, 2 + tokens]`, uploaded when made. Made before a pass
/// (as its other inputs are), the loss itself uploads nothing, so a pass that ends in it can be
/// recorded as a graph.
pub struct CtcPlan {
    plan: Tensor<2>,
    /// Workgroup memory per utterance's states (`ctc::state_capacity`).
    capacity: usize,
}

impl CtcPlan {
    /// `targets` `[b, tokens]` on the host, padded; `lengths` (frames after subsampling) and
    /// `target_lengths` one per utterance. `None` where a target is too long for the kernels'
    /// workgroup memory (`ctc::state_capacity`): burn's loss serves then.
    pub fn new(
        targets: &[i64],
        tokens: usize,
        lengths: &[usize],
        target_lengths: &[usize],
        device: &Device,
    ) -> Option<Self> {
        let capacity = super::ctc::state_capacity(target_lengths.iter().copied().max().unwrap_or(0))?;
        let batches = lengths.len();
        let mut plan = Vec::with_capacity(batches * (2 + tokens));
        for n in 0..batches {
            plan.push(lengths[n] as f32);
            plan.push(target_lengths[n] as f32);
            plan.extend(targets[n * tokens..(n + 1) * tokens].iter().map(|&t| t as f32));
        }
        let plan = Tensor::<2>::from_data(TensorData::new(plan, [batches, 2 + tokens]), device);
        Some(Self { plan, capacity })
    }
}

/// The mean CTC loss per target token (PyTorch's "mean", as `train::ctc_loss` computes it with
/// burn's operations), `[1]`, fused: one dispatch forward (the log-softmax inside), one backward,
/// and burn's mean over the batch. `logits` `[b, s, v]`, the batch `plan` made. Only for tensors
/// on a cube backend ([`runs_fused`]).
pub fn fused_planned_ctc_loss(logits: Tensor<3>, plan: &CtcPlan) -> Tensor<1> {
    let (losses, _alphas) =
        Dispatch::fused_ctc(logits.into_dispatch(), plan.plan.clone().into_dispatch(), plan.capacity);
    Tensor::<1>::from_dispatch(losses).mean()
}

/// [`CtcPlan::new`] on the logits' device, then [`fused_planned_ctc_loss`].
pub fn fused_ctc_loss(
    logits: Tensor<3>,
    targets: &[i64],
    tokens: usize,
    lengths: &[usize],
    target_lengths: &[usize],
) -> Option<Tensor<1>> {
    let plan = CtcPlan::new(targets, tokens, lengths, target_lengths, &logits.device())?;
    Some(fused_planned_ctc_loss(logits, &plan))
}

/// A site's relaxed gate sample `clamp(σ((noise + logits) / τ) · stretch + shift, 0, 1)`,
/// fused: one kernel forward, one backward, which also adds the pull `relaxation` folds in.
/// `logits` is `[units]`, `noise` `[rows, units]`. Only for tensors on a cube backend
/// ([`runs_fused`]).
pub fn fused_gate_sample(logits: Tensor<1>, noise: Tensor<2>, relaxation: GateRelaxation) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::fused_gate_sample(
        logits.into_dispatch(),
        noise.into_dispatch(),
        relaxation,
    ))
}

/// `input · weight` for `input` `[rows, d]` and `weight` `[d, o]`: burn's matrix product
/// forward, and backward the input's and the weight's gradients as one dispatch (burn's autodiff
/// launches two). Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_product(input: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    Tensor::from_dispatch(Dispatch::fused_product(input.into_dispatch(), weight.into_dispatch()))
}

/// `flat` (`[len]`) with `group`'s range written from `parts` (at most [`PACK_PARTS`], any
/// ranks), one dispatch. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_pack(flat: Tensor<1>, parts: Vec<FloatTensor<Dispatch>>, group: PackGroup) -> Tensor<1> {
    assert!(
        parts.len() <= PACK_PARTS,
        "a packing dispatch reads at most {PACK_PARTS} tensors"
    );
    // Slots without a part are bound to one one-element buffer that is never read (length 0).
    let device = flat.device();
    let mut spare: Option<FloatTensor<Dispatch>> = None;
    let mut parts = parts.into_iter();
    let mut next = || {
        parts.next().unwrap_or_else(|| {
            spare
                .get_or_insert_with(|| Tensor::<1>::empty([1], &device).into_dispatch())
                .clone()
        })
    };
    let [p0, p1, p2, p3, p4, p5] = std::array::from_fn(|_| next());
    Tensor::from_dispatch(Dispatch::fused_pack(
        flat.into_dispatch(),
        p0,
        p1,
        p2,
        p3,
        p4,
        p5,
        group,
    ))
}

/// `flat[start..start + len]` as a view (no kernel, whatever `len`); `start` must be a
/// multiple of 64 elements. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_view(flat: Tensor<1>, start: usize, len: usize) -> Tensor<1> {
    Tensor::from_dispatch(Dispatch::fused_view(flat.into_dispatch(), start, len))
}

/// Writes `values` (row-major) into `target`'s own buffer, as the next operation on its device:
/// how a recorded graph's input (`burn::tensor::capture`) gets a new batch before a replay.
/// Every tensor that shares the buffer sees the new values, which is the point and the danger:
/// only for inputs made for the purpose. `target` must be f32, contiguous, and fill its buffer.
/// Only for tensors on a cube backend ([`runs_fused`]).
pub fn overwrite<const D: usize>(target: &Tensor<D>, values: Vec<f32>) {
    drop(Dispatch::fused_overwrite(target.clone().into_dispatch(), values));
}
