//! The fused operations on burn's cube backend: each method launches its module's kernels.

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn_cubecl::CubeBackend;

use super::activation::GateActivation;
use super::attention_projection::{self, ProjectionGates};
use super::gate_relaxation::{GateDraw, GateRelaxation};
use super::hashed_dropout::HashedDropout;
use super::ops::FusedOps;
use super::pack::PackGroup;
use super::{
    attention_softmax, batch_norm_swish, ctc, depthwise_conv, flat_pack, gate_sample, gated_product, glu_gate,
    head_products, layer_norm, module_output, overwrite, packed_heads, product_pair, swish_gate,
};

impl FusedOps for CubeBackend {
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        layer_norm::forward(input, gamma, beta, epsilon)
    }

    fn fused_layer_norm_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        accumulate: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        layer_norm::backward(grad, input, gamma, statistics, accumulate.then_some(incoming))
    }

    fn fused_bias_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self> {
        swish_gate::forward(pre, bias, gate, activation, dropout, drawn)
    }

    fn fused_bias_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        swish_gate::backward(grad, pre, bias, gate, activation, dropout, drawn)
    }

    fn fused_module_output(
        residual: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        module_output::forward(residual, pre, bias, gate, dropout)
    }

    fn fused_module_output_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        module_output::backward(grad, pre, bias, gate, dropout)
    }

    fn fused_product(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        CubeBackend::float_matmul(input, weight)
    }

    fn fused_product_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        product_pair::linear_backward(grad, input, weight)
    }

    fn fused_projected_output(
        residual: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        product_pair::projected_output(residual, input, weight, bias, gate, dropout)
    }

    fn fused_projected_output_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        product_pair::module_output_backward(grad, input, weight, gate, dropout)
    }

    fn fused_ctc(
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        cap: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        ctc::forward(logits, plan, cap)
    }

    fn fused_ctc_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        alphas: FloatTensor<Self>,
        cap: usize,
    ) -> FloatTensor<Self> {
        ctc::backward(grad, logits, plan, alphas, cap)
    }

    fn fused_depthwise_conv(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        depthwise_conv::forward(input, weight, bias)
    }

    fn fused_depthwise_conv_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        depthwise_conv::backward(grad, input, weight, bias)
    }

    fn fused_gate_sample(
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self> {
        gate_sample::forward(logits, noise, relaxation)
    }

    fn fused_gate_sample_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self> {
        gate_sample::backward(grad, logits, noise, relaxation)
    }

    fn fused_gated_product(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        gated_product::forward(input, weight, bias, gate, activation, dropout, drawn)
    }

    fn fused_glu_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self> {
        glu_gate::forward(pre, bias, gate, keep, drawn)
    }

    fn fused_glu_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        glu_gate::backward(grad, pre, bias, gate, keep, drawn)
    }

    fn fused_channel_moments(input: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        batch_norm_swish::moments(input)
    }

    fn fused_batch_norm_swish(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        batch_norm_swish::forward(input, gamma, beta, mean, variance, epsilon)
    }

    fn fused_batch_norm_swish_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        batch_norm_swish::backward(grad, input, gamma, beta, mean, variance, epsilon)
    }

    fn fused_attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        attention_softmax::forward(scores, bias, keep, scale, dropout)
    }

    fn fused_attention_softmax_backward(
        grad: FloatTensor<Self>,
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        attention_softmax::backward(grad, scores, bias, keep, scale, dropout)
    }

    fn fused_head_scores(query: FloatTensor<Self>, key: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        head_products::pair_dots(query, key, heads)
    }

    fn fused_head_scores_backward(
        grad: FloatTensor<Self>,
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // dq = dS·k, dk = dSᵀ·q, per head.
        head_products::scores_backward(grad, query, key)
    }

    fn fused_head_mix(weights: FloatTensor<Self>, value: FloatTensor<Self>) -> FloatTensor<Self> {
        head_products::mix(weights, value)
    }

    fn fused_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        value: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // dW = dC·vᵀ, dv = Wᵀ·dC, per head.
        head_products::mix_backward(grad, weights, value)
    }

    fn fused_pack(
        flat: FloatTensor<Self>,
        part_0: FloatTensor<Self>,
        part_1: FloatTensor<Self>,
        part_2: FloatTensor<Self>,
        part_3: FloatTensor<Self>,
        part_4: FloatTensor<Self>,
        part_5: FloatTensor<Self>,
        group: PackGroup,
    ) -> FloatTensor<Self> {
        flat_pack::pack(flat, [part_0, part_1, part_2, part_3, part_4, part_5], group)
    }

    fn fused_view(flat: FloatTensor<Self>, start: usize, len: usize) -> FloatTensor<Self> {
        flat_pack::view(flat, start, len)
    }

    fn fused_overwrite(target: FloatTensor<Self>, values: Vec<f32>) -> FloatTensor<Self> {
        overwrite::overwrite(target, values)
    }

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
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        attention_projection::forward(
            input,
            [weight_query, weight_key, weight_value],
            [bias_query, bias_key, bias_value],
            gate_query,
            gate_value,
            gates,
        )
    }

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
    ) {
        let grads = attention_projection::backward(grad, input, z, packed_weights, gate_query, gate_value, gates);
        let [weight_query, weight_key, weight_value] = grads.weights;
        let [bias_query, bias_key, bias_value] = grads.biases;
        (
            grads.input,
            (weight_query, weight_key, weight_value),
            (bias_query, bias_key, bias_value),
            (grads.gate_query, grads.gate_value),
        )
    }

    fn fused_packed_head_scores(packed: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        packed_heads::scores(packed, heads)
    }

    fn fused_packed_head_scores_backward(
        grad: FloatTensor<Self>,
        packed: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        heads: usize,
        accumulate: bool,
    ) -> FloatTensor<Self> {
        packed_heads::scores_backward(grad, packed, accumulate.then_some(incoming), heads)
    }

    fn fused_packed_head_mix(weights: FloatTensor<Self>, packed: FloatTensor<Self>) -> FloatTensor<Self> {
        packed_heads::mix(weights, packed)
    }

    fn fused_packed_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        packed: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        packed_heads::mix_backward(grad, weights, packed)
    }
}
