//! The fused operations on burn's autodiff backend: each forward pass runs on the inner backend
//! and registers its hand-written backward pass on the graph (`autodiff_graph.rs`); a backward
//! method called on autodiff tensors runs on the inner backend and tracks nothing.

use burn::backend::AutodiffBackend;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::tensor::FloatTensor;

use super::activation::GateActivation;
use super::attention_projection::ProjectionGates;
use super::autodiff_graph::{all_three, fused_op, fused_op_accumulating, saved_inputs, untracked};
use super::gate_relaxation::{GateDraw, GateRelaxation};
use super::hashed_dropout::HashedDropout;
use super::ops::FusedOps;
use super::pack::PackGroup;

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // The forward pass runs first so that its statistics can be kept for the backward pass
        // (with the input and γ); the statistics themselves track nothing.
        let (output, statistics) = B::fused_layer_norm(
            input.clone().into_primitive(),
            gamma.clone().into_primitive(),
            beta.clone().into_primitive(),
            epsilon,
        );
        // The input is also its module's residual: the backward pass adds the gradient that
        // brought (registered first) into the input's.
        let output = fused_op_accumulating::<B, C, _, 3>(
            [input, gamma, beta],
            &[0, 1],
            statistics.clone(),
            |_| output,
            |grad, saved, statistics, incoming| {
                let [input, gamma] = saved_inputs(saved);
                let accumulate = incoming.is_some();
                let incoming = incoming.unwrap_or_else(|| grad.clone());
                all_three(B::fused_layer_norm_backward(
                    grad, input, gamma, statistics, incoming, accumulate,
                ))
            },
        );
        (output, Self::from_inner(statistics))
    }

    fn fused_bias_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        activation: GateActivation,
        dropout: HashedDropout,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self> {
        // As for the module output, the backward pass hashes the mask again (and a drawn
        // gate's noise: only its logits are saved).
        fused_op::<B, C, _, 3>(
            [pre, bias, gate],
            &[0, 1, 2],
            (activation, dropout, drawn),
            |[pre, bias, gate]| B::fused_bias_gate(pre, bias, gate, activation, dropout, drawn),
            |grad, saved, (activation, dropout, drawn)| {
                let [pre, bias, gate] = saved_inputs(saved);
                all_three(B::fused_bias_gate_backward(
                    grad, pre, bias, gate, activation, dropout, drawn,
                ))
            },
        )
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
        // The forward pass runs first so that the product it kept can go to the backward pass
        // (with the inputs); the product itself tracks nothing.
        let (output, pre) = B::fused_gated_product(
            input.clone().into_primitive(),
            weight.clone().into_primitive(),
            bias.clone().into_primitive(),
            gate.clone().into_primitive(),
            activation,
            dropout,
            drawn,
        );
        let output = fused_op::<B, C, _, 4>(
            [input, weight, bias, gate],
            &[0, 1, 2, 3],
            (pre.clone(), activation, dropout, drawn),
            |_| output,
            |grad, saved, (pre, activation, dropout, drawn)| {
                let [input, weight, bias, gate] = saved_inputs(saved);
                let [batches, frames, d] = input.shape().dims::<3>();
                let units = pre.shape()[2];
                let (grad_pre, grad_bias, grad_gate) =
                    B::fused_bias_gate_backward(grad, pre, bias, gate, activation, dropout, drawn);
                let rows = batches * frames;
                let (grad_input, grad_weight) = B::fused_product_backward(
                    B::float_reshape(grad_pre, [rows, units].into()),
                    B::float_reshape(input, [rows, d].into()),
                    weight,
                );
                [
                    Some(B::float_reshape(grad_input, [batches, frames, d].into())),
                    Some(grad_weight),
                    Some(grad_bias),
                    Some(grad_gate),
                ]
            },
        );
        (output, Self::from_inner(pre))
    }

    fn fused_module_output(
        residual: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        // The mask is not saved: the backward pass hashes it again from the same settings.
        fused_op::<B, C, _, 4>(
            [residual, pre, bias, gate],
            &[1, 2, 3],
            dropout,
            |[residual, pre, bias, gate]| B::fused_module_output(residual, pre, bias, gate, dropout),
            |grad, saved, dropout| {
                let [pre, bias, gate] = saved_inputs(saved);
                let (grad_pre, grad_bias, grad_gate) =
                    B::fused_module_output_backward(grad.clone(), pre, bias, gate, dropout);
                [Some(grad), Some(grad_pre), Some(grad_bias), Some(grad_gate)]
            },
        )
    }

    fn fused_projected_output(
        residual: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        // Only for a gate that does not train (`functions::fused_projected_output`): its
        // gradient would need the product kept. The mask is hashed again backward.
        fused_op::<B, C, _, 5>(
            [residual, input, weight, bias, gate],
            &[1, 2, 4],
            dropout,
            |[residual, input, weight, bias, gate]| {
                B::fused_projected_output(residual, input, weight, bias, gate, dropout)
            },
            |grad, saved, dropout| {
                let [input, weight, gate] = saved_inputs(saved);
                let (grad_input, grad_weight, grad_bias) =
                    B::fused_projected_output_backward(grad.clone(), input, weight, gate, dropout);
                [Some(grad), Some(grad_input), Some(grad_weight), Some(grad_bias), None]
            },
        )
    }

    fn fused_ctc(
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        cap: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // The forward pass runs first so that its α can go to the backward pass (with the
        // logits and the plan, which is a constant); the α track nothing.
        let plan = plan.into_primitive();
        let (losses, alphas) = B::fused_ctc(logits.clone().into_primitive(), plan.clone(), cap);
        let losses = fused_op::<B, C, _, 1>(
            [logits],
            &[0],
            (plan, alphas.clone(), cap),
            |_| losses,
            |grad, saved, (plan, alphas, cap)| {
                let [logits] = saved_inputs(saved);
                [Some(B::fused_ctc_backward(grad, logits, plan, alphas, cap))]
            },
        );
        (losses, Self::from_inner(alphas))
    }

    fn fused_depthwise_conv(
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, _, 3>(
            [input, weight, bias],
            &[0, 1, 2],
            (),
            |[input, weight, bias]| B::fused_depthwise_conv(input, weight, bias),
            |grad, saved, ()| {
                let [input, weight, bias] = saved_inputs(saved);
                all_three(B::fused_depthwise_conv_backward(grad, input, weight, bias))
            },
        )
    }

    fn fused_product(input: FloatTensor<Self>, weight: FloatTensor<Self>) -> FloatTensor<Self> {
        fused_op::<B, C, _, 2>(
            [input, weight],
            &[0, 1],
            (),
            |[input, weight]| B::fused_product(input, weight),
            |grad, saved, ()| {
                let [input, weight] = saved_inputs(saved);
                let (grad_input, grad_weight) = B::fused_product_backward(grad, input, weight);
                [Some(grad_input), Some(grad_weight)]
            },
        )
    }

    fn fused_gate_sample(
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self> {
        // The sample is not saved: the backward recomputes it from the logits and the noise.
        fused_op::<B, C, _, 2>(
            [logits, noise],
            &[0, 1],
            relaxation,
            |[logits, noise]| B::fused_gate_sample(logits, noise, relaxation),
            |grad, saved, relaxation| {
                let [logits, noise] = saved_inputs(saved);
                [
                    Some(B::fused_gate_sample_backward(grad, logits, noise, relaxation)),
                    None,
                ]
            },
        )
    }

    fn fused_glu_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, _, 4>(
            [pre, bias, gate, keep],
            &[0, 1, 2, 3],
            drawn,
            |[pre, bias, gate, keep]| B::fused_glu_gate(pre, bias, gate, keep, drawn),
            |grad, saved, drawn| {
                let [pre, bias, gate, keep] = saved_inputs(saved);
                let [pre, bias, gate] = all_three(B::fused_glu_gate_backward(grad, pre, bias, gate, keep, drawn));
                [pre, bias, gate, None]
            },
        )
    }

    fn fused_attention_softmax(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, _, 3>(
            [scores, bias, keep],
            &[0, 1, 2],
            (scale, dropout),
            |[scores, bias, keep]| B::fused_attention_softmax(scores, bias, keep, scale, dropout),
            |grad, saved, (scale, dropout)| {
                let [scores, bias, keep] = saved_inputs(saved);
                let (grad_scores, grad_bias) =
                    B::fused_attention_softmax_backward(grad, scores, bias, keep, scale, dropout);
                [Some(grad_scores), Some(grad_bias), None]
            },
        )
    }

    fn fused_head_scores(query: FloatTensor<Self>, key: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        fused_op::<B, C, _, 2>(
            [query, key],
            &[0, 1],
            0.0,
            |[query, key]| B::fused_head_scores(query, key, heads),
            |grad, saved, _| {
                let [query, key] = saved_inputs(saved);
                let (grad_query, grad_key) = B::fused_head_scores_backward(grad, query, key);
                [Some(grad_query), Some(grad_key)]
            },
        )
    }

    fn fused_head_mix(weights: FloatTensor<Self>, value: FloatTensor<Self>) -> FloatTensor<Self> {
        fused_op::<B, C, _, 2>(
            [weights, value],
            &[0, 1],
            0.0,
            |[weights, value]| B::fused_head_mix(weights, value),
            |grad, saved, _| {
                let [weights, value] = saved_inputs(saved);
                let (grad_weights, grad_value) = B::fused_head_mix_backward(grad, weights, value);
                [Some(grad_weights), Some(grad_value)]
            },
        )
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
        // As for LayerNorm, the forward pass runs first: what it keeps for the backward pass
        // (the pre-gate values and the packed weights) is the node's state, tracking nothing.
        let inputs = [
            input,
            weight_query,
            weight_key,
            weight_value,
            bias_query,
            bias_key,
            bias_value,
            gate_query,
            gate_value,
        ];
        let [x, wq, wk, wv, bq, bk, bv, gq, gv] = inputs.clone().map(Self::inner);
        let (output, z, packed_weights) = B::fused_attention_projection(x, wq, wk, wv, bq, bk, bv, gq, gv, gates);
        let output = fused_op::<B, C, _, 9>(
            inputs,
            &[0, 7, 8],
            (z.clone(), packed_weights.clone(), gates),
            |_| output,
            |grad, saved, (z, packed_weights, gates)| {
                let [input, gate_query, gate_value] = saved_inputs(saved);
                let (input, (wq, wk, wv), (bq, bk, bv), (gq, gv)) = B::fused_attention_projection_backward(
                    grad,
                    input,
                    z,
                    packed_weights,
                    gate_query,
                    gate_value,
                    gates,
                );
                [
                    Some(input),
                    Some(wq),
                    Some(wk),
                    Some(wv),
                    Some(bq),
                    Some(bk),
                    Some(bv),
                    gates.query.is_gated().then_some(gq),
                    gates.value.is_gated().then_some(gv),
                ]
            },
        );
        (output, Self::from_inner(z), Self::from_inner(packed_weights))
    }

    fn fused_packed_head_scores(packed: FloatTensor<Self>, heads: usize) -> FloatTensor<Self> {
        // The mix's gradient of the packed rows is registered first: added in the kernel.
        fused_op_accumulating::<B, C, _, 1>(
            [packed],
            &[0],
            heads,
            |[packed]| B::fused_packed_head_scores(packed, heads),
            |grad, saved, heads, incoming| {
                let [packed] = saved_inputs(saved);
                let accumulate = incoming.is_some();
                let incoming = incoming.unwrap_or_else(|| packed.clone());
                [Some(B::fused_packed_head_scores_backward(
                    grad, packed, incoming, heads, accumulate,
                ))]
            },
        )
    }

    fn fused_packed_head_mix(weights: FloatTensor<Self>, packed: FloatTensor<Self>) -> FloatTensor<Self> {
        fused_op::<B, C, _, 2>(
            [weights, packed],
            &[0, 1],
            (),
            |[weights, packed]| B::fused_packed_head_mix(weights, packed),
            |grad, saved, ()| {
                let [weights, packed] = saved_inputs(saved);
                let (grad_weights, grad_packed) = B::fused_packed_head_mix_backward(grad, weights, packed);
                [Some(grad_weights), Some(grad_packed)]
            },
        )
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
        let [p0, p1, p2, p3, p4, p5] = [part_0, part_1, part_2, part_3, part_4, part_5].map(Self::inner);
        Self::from_inner(B::fused_pack(Self::inner(flat), p0, p1, p2, p3, p4, p5, group))
    }

    fn fused_view(flat: FloatTensor<Self>, start: usize, len: usize) -> FloatTensor<Self> {
        Self::from_inner(B::fused_view(Self::inner(flat), start, len))
    }

    fn fused_overwrite(target: FloatTensor<Self>, values: Vec<f32>) -> FloatTensor<Self> {
        Self::from_inner(B::fused_overwrite(Self::inner(target), values))
    }

    fn fused_channel_moments(input: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (mean, variance) = B::fused_channel_moments(Self::inner(input));
        (Self::from_inner(mean), Self::from_inner(variance))
    }

    fn fused_batch_norm_swish(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, _, 5>(
            [input, gamma, beta, mean, variance],
            &[0, 1, 2, 3, 4],
            epsilon,
            |[input, gamma, beta, mean, variance]| {
                B::fused_batch_norm_swish(input, gamma, beta, mean, variance, epsilon)
            },
            |grad, saved, epsilon| {
                let [input, gamma, beta, mean, variance] = saved_inputs(saved);
                let [input, gamma, beta] = all_three(B::fused_batch_norm_swish_backward(
                    grad, input, gamma, beta, mean, variance, epsilon,
                ));
                // The moments' dependence on the input is in the input's gradient.
                [input, gamma, beta, None, None]
            },
        )
    }

    // The backward methods are not differentiated themselves (Prunelab takes no second-order
    // gradients): computed on the inner backend, their results untracked.

    fn fused_layer_norm_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        statistics: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        accumulate: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_layer_norm_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(gamma),
            Self::inner(statistics),
            Self::inner(incoming),
            accumulate,
        ))
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
        untracked::<B, C>(B::fused_bias_gate_backward(
            Self::inner(grad),
            Self::inner(pre),
            Self::inner(bias),
            Self::inner(gate),
            activation,
            dropout,
            drawn,
        ))
    }

    fn fused_module_output_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_module_output_backward(
            Self::inner(grad),
            Self::inner(pre),
            Self::inner(bias),
            Self::inner(gate),
            dropout,
        ))
    }

    fn fused_depthwise_conv_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_depthwise_conv_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(weight),
            Self::inner(bias),
        ))
    }

    fn fused_product_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_input, grad_weight) =
            B::fused_product_backward(Self::inner(grad), Self::inner(input), Self::inner(weight));
        (Self::from_inner(grad_input), Self::from_inner(grad_weight))
    }

    fn fused_projected_output_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_projected_output_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(weight),
            Self::inner(gate),
            dropout,
        ))
    }

    fn fused_ctc_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        plan: FloatTensor<Self>,
        alphas: FloatTensor<Self>,
        cap: usize,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::fused_ctc_backward(
            Self::inner(grad),
            Self::inner(logits),
            Self::inner(plan),
            Self::inner(alphas),
            cap,
        ))
    }

    fn fused_gate_sample_backward(
        grad: FloatTensor<Self>,
        logits: FloatTensor<Self>,
        noise: FloatTensor<Self>,
        relaxation: GateRelaxation,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::fused_gate_sample_backward(
            Self::inner(grad),
            Self::inner(logits),
            Self::inner(noise),
            relaxation,
        ))
    }

    fn fused_glu_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        drawn: Option<GateDraw>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_glu_gate_backward(
            Self::inner(grad),
            Self::inner(pre),
            Self::inner(bias),
            Self::inner(gate),
            Self::inner(keep),
            drawn,
        ))
    }

    fn fused_attention_softmax_backward(
        grad: FloatTensor<Self>,
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        keep: FloatTensor<Self>,
        scale: f32,
        dropout: HashedDropout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_scores, grad_bias) = B::fused_attention_softmax_backward(
            Self::inner(grad),
            Self::inner(scores),
            Self::inner(bias),
            Self::inner(keep),
            scale,
            dropout,
        );
        (Self::from_inner(grad_scores), Self::from_inner(grad_bias))
    }

    fn fused_head_scores_backward(
        grad: FloatTensor<Self>,
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_query, grad_key) =
            B::fused_head_scores_backward(Self::inner(grad), Self::inner(query), Self::inner(key));
        (Self::from_inner(grad_query), Self::from_inner(grad_key))
    }

    fn fused_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        value: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_weights, grad_value) =
            B::fused_head_mix_backward(Self::inner(grad), Self::inner(weights), Self::inner(value));
        (Self::from_inner(grad_weights), Self::from_inner(grad_value))
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
        untracked::<B, C>(B::fused_batch_norm_swish_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(gamma),
            Self::inner(beta),
            Self::inner(mean),
            Self::inner(variance),
            epsilon,
        ))
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
        let (input, weights, biases, (gq, gv)) = B::fused_attention_projection_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(z),
            Self::inner(packed_weights),
            Self::inner(gate_query),
            Self::inner(gate_value),
            gates,
        );
        let (weights, biases) = (untracked::<B, C>(weights), untracked::<B, C>(biases));
        (
            Self::from_inner(input),
            weights,
            biases,
            (Self::from_inner(gq), Self::from_inner(gv)),
        )
    }

    fn fused_packed_head_scores_backward(
        grad: FloatTensor<Self>,
        packed: FloatTensor<Self>,
        incoming: FloatTensor<Self>,
        heads: usize,
        accumulate: bool,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::fused_packed_head_scores_backward(
            Self::inner(grad),
            Self::inner(packed),
            Self::inner(incoming),
            heads,
            accumulate,
        ))
    }

    fn fused_packed_head_mix_backward(
        grad: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        packed: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_weights, grad_packed) =
            B::fused_packed_head_mix_backward(Self::inner(grad), Self::inner(weights), Self::inner(packed));
        (Self::from_inner(grad_weights), Self::from_inner(grad_packed))
    }
}
