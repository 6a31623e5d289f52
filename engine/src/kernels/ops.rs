//! The backend extension that carries the fused operations through burn's dispatch: the trait,
//! implemented in `cube.rs` for the kernels and in `autodiff.rs` for the backward passes (the
//! tensor-level functions the model calls are `functions.rs`).

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, backend_extension};

use super::activation::GateActivation;
use super::attention_projection::ProjectionGates;
use super::gate_relaxation::{GateDraw, GateRelaxation};
use super::hashed_dropout::HashedDropout;
use super::pack::PackGroup;

/// The fused operations, one method for each forward pass and one for each backward pass.
#[backend_extension(Cube, Fusion: cfg(target_family = "wasm"), Autodiff)]
pub trait FusedOps: Backend {
    /// LayerNorm over the last axis: `(x − mean) / √(var + ε) · γ + β`, the variance biased;
    /// and each row's mean and 1/√(var + ε), `[rows, 2]`, for the backward pass.
    #[fusion(meta = |input, _gamma, _beta, _epsilon| {
        let width = input.shape[input.shape.num_dims() - 1].max(1);
        let rows = input.shape.num_elements() / width;
        let statistics = burn::backend::fusion::custom::TensorSpec::new([rows, 2].into(), input.dtype);
        (input.clone(), statistics)
    })]
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`FusedOps::fused_layer_norm`] with respect to its input, γ and β, from the
    /// gradient of its output and the statistics its forward pass kept; with `accumulate`, the
    /// input's gradient so far (`incoming`, unread otherwise) added to the input's.
    #[fusion(meta = |_grad, input, gamma, _statistics, _incoming, _accumulate| (input.clone(), gamma.clone(), gamma.clone()))]
    fn fused_layer_norm_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        accumulate: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// A gated layer after its matrix product: `drop(act(pre + bias) · gate)`, with `pre`
    /// `[batch, frames, units]`, `bias` `[units]`, `gate` `[batch or 1, 1, units]`, `act` Swish
    /// (the feed-forward module's hidden layer) or none (the attention's projections) and `drop`
    /// the hashed dropout `dropout`. With `drawn`, `gate` is the logits `[units]` of a relaxed
    /// sample drawn inside the kernels.
    #[fusion(dtype = pre, shape = pre)]
    fn fused_bias_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self>;

    /// [`FusedOps::fused_bias_gate`] with the matrix product before it: `drop(act(input ·
    /// weight + bias) · gate)` for `input` `[batch, frames, d]` and `weight` `[d, units]`, one
    /// dispatch; also returns `input · weight`, which the backward pass (that of
    /// [`FusedOps::fused_bias_gate`], then [`FusedOps::fused_product_backward`]) reads.
    #[fusion(meta = |input, weight, _bias, _gate, _activation, _dropout, _drawn| {
        let shape: burn::backend::Shape = [input.shape[0], input.shape[1], weight.shape[1]].into();
        let spec = burn::backend::fusion::custom::TensorSpec::new(shape, input.dtype);
        (spec.clone(), spec)
    })]
    fn fused_gated_product(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`FusedOps::fused_bias_gate`] with respect to `pre`, `bias` and `gate`
    /// (the logits when `drawn`, with the draw's pull added).
    #[fusion(meta = |_grad, pre, bias, gate, _activation, _dropout, _drawn| (pre.clone(), bias.clone(), gate.clone()))]
    fn fused_bias_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The convolution module's gated linear unit after its first matrix product:
    /// `(a + b_a) · σ(g + b_g) · gate · keep`, with `pre` `[batch, frames, 2c]` (`a` then `g`),
    /// `bias` `[2c]`, `gate` `[batch or 1, 1, c]` and `keep` `[batch, frames]` (0 on padding).
    #[fusion(meta = |pre, _bias, _gate, _keep, _drawn| {
        let mut shape = pre.shape.clone();
        let last = shape.num_dims() - 1;
        shape[last] /= 2;
        burn::backend::fusion::custom::TensorSpec::new(shape, pre.dtype)
    })]
    fn fused_glu_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_glu_gate`] with respect to `pre`, `bias` and `gate`
    /// (the logits when `drawn`, with the draw's pull added; `keep` is a constant).
    #[fusion(meta = |_grad, pre, bias, gate, _keep, _drawn| (pre.clone(), bias.clone(), gate.clone()))]
    fn fused_glu_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The convolution module's depthwise convolution in its own layout: `input`
    /// `[batch, frames, channels]`, `weight` `[channels, 1, taps]` (burn's `Conv1d` with one
    /// group per channel), `bias` `[channels]`, "same" zero padding.
    #[fusion(dtype = input, shape = input)]
    fn fused_depthwise_conv(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_depthwise_conv`] with respect to `input`, `weight` and
    /// `bias` (`bias` is only the shape of its gradient).
    #[fusion(meta = |_grad, input, weight, bias| (input.clone(), weight.clone(), bias.clone()))]
    fn fused_depthwise_conv_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Each channel's mean and biased variance over batches and frames of `input`
    /// `[batch, frames, channels]` (BatchNorm's batch statistics). Not differentiated.
    #[fusion(meta = |input| {
        let channels: burn::backend::Shape = [input.shape[2]].into();
        (
            burn::backend::fusion::custom::TensorSpec::new(channels.clone(), input.dtype),
            burn::backend::fusion::custom::TensorSpec::new(channels, input.dtype),
        )
    })]
    fn fused_channel_moments(input: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `swish(BatchNorm(input))` with the batch's own `mean` and `variance` (from
    /// [`FusedOps::fused_channel_moments`]), `input` `[batch, frames, channels]`.
    #[fusion(dtype = input, shape = input)]
    fn fused_batch_norm_swish(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_batch_norm_swish`] with respect to `input`, γ and β
    /// (through the moments too).
    #[fusion(meta = |_grad, input, gamma, _beta, _mean, _variance, _epsilon| (input.clone(), gamma.clone(), gamma.clone()))]
    fn fused_batch_norm_swish_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The attention weights from the raw scores `[b, h, s, s]` (q·kᵀ): `softmax_j(scale · score
    /// + bias[clamp(j − i, −R, R) + R, h])` over the keys that `keep` `[b, s]` marks (1; 0 on
    /// padding), with `bias` `[2R + 1, h]`.
    /// The weights then go through the hashed dropout `dropout`.
    #[fusion(dtype = scores, shape = scores)]
    fn fused_attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_attention_softmax`] with respect to the scores and the
    /// bias (`keep` is a constant).
    #[fusion(meta = |_grad, scores, bias, _keep, _scale, _dropout| (scores.clone(), bias.clone()))]
    fn fused_attention_softmax_backward(
        grad: FloatTensor<Self>,
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Per head, every row of `query` against every row of `key` (both `[b, s, h·w]`, head `h`
    /// in columns `h·w .. (h + 1)·w`): the scores `[b, h, s, s]`, no head split out.
    #[fusion(meta = |query, _key, heads| {
        let (batches, frames) = (query.shape[0], query.shape[1]);
        burn::backend::fusion::custom::TensorSpec::new([batches, *heads, frames, frames].into(), query.dtype)
    })]
    fn fused_head_scores(query: FloatTensor<Self>, key: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_head_scores`] with respect to `query` and `key`.
    #[fusion(meta = |_grad, query, key| (query.clone(), key.clone()))]
    fn fused_head_scores_backward(
        grad: FloatTensor<Self>,
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// Per head, the rows of `value` `[b, s, h·w]` mixed by `weights` `[b, h, s, s]`: the context
    /// `[b, s, h·w]`, heads already merged.
    #[fusion(dtype = value, shape = value)]
    fn fused_head_mix(weights: FloatTensor<Self>, value: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_head_mix`] with respect to `weights` and `value`.
    #[fusion(meta = |_grad, weights, value| (weights.clone(), value.clone()))]
    fn fused_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        value: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The attention's query, key and value projections of `input` `[b, s, d]` as one product:
    /// `[b, s, 3w]` with each row's query, key and value side by side, each `x·W + b` and the
    /// query's and value's times their gates (`gates` says how each is given: `gate_query` and
    /// `gate_value` are values `[batch or 1, 1, w]`, logits `[w]`, or unread). Also returns what
    /// the backward pass keeps: `x·W + b` before the gates, and the packed weights `[d, 3w]`.
    #[fusion(meta = |input, weight_query, _weight_key, _weight_value, _bias_query, _bias_key, _bias_value, _gate_query, _gate_value, _gates| {
        let (batches, frames, d) = (input.shape[0], input.shape[1], input.shape[2]);
        let columns = 3 * weight_query.shape[1];
        let packed = burn::backend::fusion::custom::TensorSpec::new([batches, frames, columns].into(), input.dtype);
        let weights = burn::backend::fusion::custom::TensorSpec::new([d, columns].into(), input.dtype);
        (packed.clone(), packed, weights)
    })]
    #[allow(clippy::too_many_arguments)]
    fn fused_attention_projection(
        input: FloatTensor<Self>,
        weight_query: FloatTensor<Self>,
        weight_key: FloatTensor<Self>,
        weight_value: FloatTensor<Self>,
        bias_query: FloatTensor<Self>,
        bias_key: FloatTensor<Self>,
        bias_value: FloatTensor<Self>,
        gate_query: FloatTensor<Self>,
        gate_value: FloatTensor<Self>,
        gates: ProjectionGates,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`FusedOps::fused_attention_projection`] with respect to the input, the
    /// three weights, the three biases and the two gates (the logits' when drawn, the pull
    /// added; unwritten where ungated), from the packed output's and what the forward kept.
    #[fusion(meta = |_grad, input, z, _packed_weights, gate_query, gate_value, _gates| {
        let d = input.shape[2];
        let width = z.shape[2] / 3;
        let weight = burn::backend::fusion::custom::TensorSpec::new([d, width].into(), input.dtype);
        let bias = burn::backend::fusion::custom::TensorSpec::new([width].into(), input.dtype);
        (
            input.clone(),
            (weight.clone(), weight.clone(), weight),
            (bias.clone(), bias.clone(), bias),
            (gate_query.clone(), gate_value.clone()),
        )
    })]
    #[allow(clippy::type_complexity)]
    fn fused_attention_projection_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        z: FloatTensor<Self>,
        packed_weights: FloatTensor<Self>,
        gate_query: FloatTensor<Self>,
        gate_value: FloatTensor<Self>,
        gates: ProjectionGates,
    ) -> (
        FloatTensor<Self>,
        (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>),
        (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>),
        (FloatTensor<Self>, FloatTensor<Self>),
    );

    /// [`FusedOps::fused_head_scores`] reading the query and the key from the packed rows
    /// `[b, s, 3·h·w]` of [`FusedOps::fused_attention_projection`].
    #[fusion(meta = |packed, heads| {
        let (batches, frames) = (packed.shape[0], packed.shape[1]);
        burn::backend::fusion::custom::TensorSpec::new([batches, *heads, frames, frames].into(), packed.dtype)
    })]
    fn fused_packed_head_scores(packed: FloatTensor<Self>, heads: usize) -> FloatTensor<Self>;

    /// The gradient of [`FusedOps::fused_packed_head_scores`] with respect to the packed rows
    /// (zero in the value's columns); with `accumulate`, plus `incoming` (the packed rows'
    /// gradient so far, the mix's; unread otherwise).
    #[fusion(meta = |_grad, packed, _incoming, _heads, _accumulate| packed.clone())]
    fn fused_packed_head_scores_backward(
        grad: FloatTensor<Self>,
        packed: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        heads: usize,
        accumulate: bool,
    ) -> FloatTensor<Self>;

    /// [`FusedOps::fused_head_mix`] reading the value from the packed rows `[b, s, 3·h·w]`.
    #[fusion(meta = |_weights, packed| {
        let (batches, frames, columns) = (packed.shape[0], packed.shape[1], packed.shape[2] / 3);
        burn::backend::fusion::custom::TensorSpec::new([batches, frames, columns].into(), packed.dtype)
    })]
    fn fused_packed_head_mix(weights: FloatTensor<Self>, packed: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_packed_head_mix`] with respect to the weights and the
    /// packed rows (zero in the query's and the key's columns).
    #[fusion(meta = |_grad, weights, packed| (weights.clone(), packed.clone()))]
    fn fused_packed_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        packed: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// What a module adds to the residual stream after its last matrix product:
    /// `residual + gate · drop(pre + bias)`, with `residual` and `pre` `[batch, frames, d]`,
    /// `bias` `[d]`, `gate` `[batch or 1, 1, 1]` and `drop` the hashed dropout `dropout`.
    #[fusion(dtype = pre, shape = pre)]
    fn fused_module_output(
        residual: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_module_output`] with respect to `pre`, `bias` and
    /// `gate` (the residual's is the output's own).
    #[fusion(meta = |_grad, pre, bias, gate, _dropout| (pre.clone(), bias.clone(), gate.clone()))]
    fn fused_module_output_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// [`FusedOps::fused_module_output`] of a module's last matrix product: `residual + gate ·
    /// drop(input · weight + bias)`, with `input` `[batch, frames, d]` and `weight` `[d, o]`; for a
    /// gate that does not train, whose backward pass is one dispatch
    /// ([`FusedOps::fused_projected_output_backward`]).
    #[fusion(dtype = residual, shape = residual)]
    fn fused_projected_output(
        residual: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_projected_output`] with respect to `input`, `weight`
    /// and `bias` (the residual's is the output's own; the gate is a constant), in one dispatch.
    #[fusion(meta = |_grad, input, weight, _gate, _dropout| {
        let bias = burn::backend::fusion::custom::TensorSpec::new([weight.shape[1]].into(), weight.dtype);
        (input.clone(), weight.clone(), bias)
    })]
    fn fused_projected_output_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// A site's relaxed gate sample `[rows, units]` from its logits `[units]` and logistic
    /// `noise` `[rows, units]` (`relaxation` says which relaxation and any pull folded in).
    #[fusion(dtype = noise, shape = noise)]
    fn fused_gate_sample(
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self>;

    /// The gradient of [`FusedOps::fused_gate_sample`] with respect to `logits`, the pull added.
    #[fusion(dtype = logits, shape = logits)]
    fn fused_gate_sample_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self>;

    /// `input · weight` for `input` `[rows, d]` and `weight` `[d, o]`: a linear layer's matrix
    /// product, burn's forward, with its two backward products as one dispatch
    /// ([`FusedOps::fused_product_backward`]).
    #[fusion(meta = |input, weight| {
        burn::backend::fusion::custom::TensorSpec::new([input.shape[0], weight.shape[1]].into(), input.dtype)
    })]
    fn fused_product(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_product`] with respect to the input (`grad · weightᵀ`)
    /// and the weight (`inputᵀ · grad`), both in one dispatch (`product_pair.rs`).
    #[fusion(meta = |_grad, input, weight| (input.clone(), weight.clone()))]
    fn fused_product_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The CTC loss of each utterance, `−ln p / L` (0 where no alignment exists), `[batch]`, from
    /// `logits` `[batch, frames, classes]` (the log-softmax is inside) and `plan` `[batch, 2 +
    /// tokens]` (each utterance's frames, target length and tokens, as floats); and every frame's
    /// α, `[batch, frames, cap]`, for the backward pass (`ctc.rs`; `cap` from
    /// `ctc::state_capacity`).
    #[fusion(meta = |logits, _plan, cap| {
        let (batches, frames) = (logits.shape[0], logits.shape[1]);
        (
            burn::backend::fusion::custom::TensorSpec::new([batches].into(), logits.dtype),
            burn::backend::fusion::custom::TensorSpec::new([batches, frames, *cap].into(), logits.dtype),
        )
    })]
    fn fused_ctc(
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        cap: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient of [`FusedOps::fused_ctc`]'s losses with respect to the logits, from the
    /// losses' gradient `[batch]` and the α the forward pass kept.
    #[fusion(meta = |_grad, logits, _plan, _alphas, _cap| logits.clone())]
    fn fused_ctc_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        alphas: FloatTensor<Self>,
        cap: usize,
    ) -> FloatTensor<Self>;

    /// `flat` with `group`'s range written from the six parts (any ranks and strides; a part
    /// whose length in `group` is 0 is not read), in place where nothing else holds `flat`. The
    /// flat optimiser's gradient packing (`flat_pack.rs`); not differentiated.
    #[fusion(dtype = flat, shape = flat)]
    #[allow(clippy::too_many_arguments)]
    fn fused_pack(
        flat: FloatTensor<Self>,
        part_0: FloatTensor<Self>,
        part_1: FloatTensor<Self>,
        part_2: FloatTensor<Self>,
        part_3: FloatTensor<Self>,
        part_4: FloatTensor<Self>,
        part_5: FloatTensor<Self>,
        group: PackGroup,
    ) -> FloatTensor<Self>;

    /// `flat[start..start + len]` as a view, with no kernel (`start` a multiple of 64 elements).
    /// Not differentiated.
    #[fusion(meta = |flat, _start, len| {
        burn::backend::fusion::custom::TensorSpec::new([*len].into(), flat.dtype)
    })]
    fn fused_view(flat: FloatTensor<Self>, start: usize, len: usize) -> FloatTensor<Self>;

    /// `target` with `values` written into its own buffer (no kernel, no new buffer): the
    /// refreshing of a recorded graph's inputs before a replay. Not differentiated.
    #[fusion(dtype = target, shape = target)]
    fn fused_overwrite(target: FloatTensor<Self>, values: Vec<f32>) -> FloatTensor<Self>;
}
