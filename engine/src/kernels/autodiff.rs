//! The fused operations on burn's autodiff backend: each forward pass runs on the inner backend
//! and registers its hand-written backward pass on the graph (`fused_op`), which checkpoints the
//! inputs the backward needs and registers the gradients of the inputs that track one.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend};

use super::hashed_dropout::HashedDropout;
use super::ops::FusedOps;
use super::pack::PackGroup;

/// The gradients a fused operation's backward pass gives its `N` inputs, in their order
/// (`None` for an input that is a constant, such as a padding mask).
type InputGrads<B, const N: usize> = [Option<FloatTensor<B>>; N];

/// The backward pass of a fused operation with `N` inputs: the inputs it saved (checkpointed in
/// the forward pass) and its scalar settings `S` (an epsilon, a dropout's seed) go to the inner
/// backend's backward method, whose gradients are registered on the inputs that track theirs.
#[derive(Debug)]
struct FusedBackward<B: Backend, S, const N: usize> {
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, S) -> InputGrads<B, N>,
}

impl<B: Backend, S: Clone + Send + std::fmt::Debug + 'static, const N: usize> Backward<B, N>
    for FusedBackward<B, S, N>
{
    /// The saved inputs and the scalar settings.
    type State = (Vec<NodeId>, S);

    fn backward(self, ops: Ops<Self::State, N>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let (saved, scalar) = ops.state;
        let saved = saved
            .into_iter()
            .map(|id| checkpointer.retrieve_node_output::<FloatTensor<B>>(id))
            .collect();
        let grad = grads.consume::<B>(&ops.node);
        for (parent, grad) in ops.parents.into_iter().zip((self.backward)(grad, saved, scalar)) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs `forward` on the inner backend and, where any input is tracked, registers `backward`
/// with the inputs at `saved` (their positions in `inputs`) checkpointed for it.
fn fused_op<B: FusedOps, C: CheckpointStrategy, S: Clone + Send + std::fmt::Debug + 'static, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    saved: &[usize],
    scalar: S,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, S) -> InputGrads<B, N>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = std::array::from_fn(|i| inputs[i].node());
    let op = FusedBackward { backward };
    match op.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let ids = saved.iter().map(|&i| prep.checkpoint(&inputs[i])).collect();
            prep.finish((ids, scalar), forward(inputs.map(|t| t.into_primitive())))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(inputs.map(|t| t.into_primitive()))),
    }
}

/// The saved inputs as an array of `M` (as many as the operation saved).
fn saved_inputs<T, const M: usize>(saved: Vec<T>) -> [T; M] {
    saved
        .try_into()
        .unwrap_or_else(|_| unreachable!("a fused operation's backward gets what its forward saved"))
}

/// Three gradients, all of inputs that can track one.
fn all_three<T>((a, b, c): (T, T, T)) -> [Option<T>; 3] {
    [Some(a), Some(b), Some(c)]
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        // The backward pass recomputes the statistics from the input (a row is one pass over
        // memory that the backward kernel reads anyway), so only the input and γ are saved.
        fused_op::<B, C, _, 3>(
            [input, gamma, beta],
            &[0, 1],
            epsilon,
            |[input, gamma, beta]| B::fused_layer_norm(input, gamma, beta, epsilon),
            |grad, saved, epsilon| {
                let [input, gamma] = saved_inputs(saved);
                all_three(B::fused_layer_norm_backward(grad, input, gamma, epsilon))
            },
        )
    }

    fn fused_swish_gate(pre: FloatTensor<Self>, bias: FloatTensor<Self>, gate: FloatTensor<Self>) -> FloatTensor<Self> {
        fused_op::<B, C, _, 3>(
            [pre, bias, gate],
            &[0, 1, 2],
            0.0,
            |[pre, bias, gate]| B::fused_swish_gate(pre, bias, gate),
            |grad, saved, _| {
                let [pre, bias, gate] = saved_inputs(saved);
                all_three(B::fused_swish_gate_backward(grad, pre, bias, gate))
            },
        )
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

    fn fused_glu_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, _, 4>(
            [pre, bias, gate, keep],
            &[0, 1, 2, 3],
            0.0,
            |[pre, bias, gate, keep]| B::fused_glu_gate(pre, bias, gate, keep),
            |grad, saved, _| {
                let [pre, bias, gate, keep] = saved_inputs(saved);
                let [pre, bias, gate] = all_three(B::fused_glu_gate_backward(grad, pre, bias, gate, keep));
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
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_layer_norm_backward(
            Self::inner(grad),
            Self::inner(input),
            Self::inner(gamma),
            epsilon,
        ))
    }

    fn fused_swish_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_swish_gate_backward(
            Self::inner(grad),
            Self::inner(pre),
            Self::inner(bias),
            Self::inner(gate),
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

    fn fused_glu_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        untracked::<B, C>(B::fused_glu_gate_backward(
            Self::inner(grad),
            Self::inner(pre),
            Self::inner(bias),
            Self::inner(gate),
            Self::inner(keep),
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
}

/// Three inner-backend tensors as autodiff tensors that track nothing.
fn untracked<B: Backend, C: CheckpointStrategy>(
    (a, b, c): (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>),
) -> (
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
    FloatTensor<Autodiff<B, C>>,
) {
    (
        Autodiff::<B, C>::from_inner(a),
        Autodiff::<B, C>::from_inner(b),
        Autodiff::<B, C>::from_inner(c),
    )
}
