//! The backend extension that carries the fused operations through burn's dispatch: the trait,
//! its autodiff implementation (each operation's backward pass, registered on the graph), and
//! the tensor-level functions the model calls.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, DispatchDevice, backend_extension};
use burn::prelude::*;

/// The fused operations, one method for each forward pass and one for each backward pass.
#[backend_extension(Cube, Fusion: cfg(target_family = "wasm"), Autodiff)]
pub trait FusedOps: Backend {
    /// LayerNorm over the last axis: `(x − mean) / √(var + ε) · γ + β`, the variance biased.
    #[fusion(dtype = input, shape = input)]
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_layer_norm`] with respect to its input, γ and β, from the
    /// gradient of its output.
    #[fusion(meta = |_grad, input, gamma, _epsilon| (input.clone(), gamma.clone(), gamma.clone()))]
    fn fused_layer_norm_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
    /// The feed-forward module's hidden layer after its matrix product: `swish(pre + bias) · gate`,
    /// with `pre` `[batch, frames, units]`, `bias` `[units]`, `gate` `[batch or 1, 1, units]`.
    #[fusion(dtype = pre, shape = pre)]
    fn fused_swish_gate(pre: FloatTensor<Self>, bias: FloatTensor<Self>, gate: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_swish_gate`] with respect to `pre`, `bias` and `gate`.
    #[fusion(meta = |_grad, pre, bias, gate| (pre.clone(), bias.clone(), gate.clone()))]
    fn fused_swish_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The convolution module's gated linear unit after its first matrix product:
    /// `(a + b_a) · σ(g + b_g) · gate · keep`, with `pre` `[batch, frames, 2c]` (`a` then `g`),
    /// `bias` `[2c]`, `gate` `[batch or 1, 1, c]` and `keep` `[batch, frames]` (0 on padding).
    #[fusion(meta = |pre, _bias, _gate, _keep| {
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
    ) -> FloatTensor<Self>;

    /// The gradients of [`FusedOps::fused_glu_gate`] with respect to `pre`, `bias` and `gate`
    /// (`keep` is a constant).
    #[fusion(meta = |_grad, pre, bias, gate, _keep| (pre.clone(), bias.clone(), gate.clone()))]
    fn fused_glu_gate_backward(
        grad: FloatTensor<Self>,
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Each channel's mean and biased variance over batches and frames of `input`
    /// `[batch, channels, frames]` (BatchNorm's batch statistics). Not differentiated.
    #[fusion(meta = |input| {
        let channels: burn::backend::Shape = [input.shape[1]].into();
        (
            burn::backend::fusion::custom::TensorSpec::new(channels.clone(), input.dtype),
            burn::backend::fusion::custom::TensorSpec::new(channels, input.dtype),
        )
    })]
    fn fused_channel_moments(input: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// `swish(BatchNorm(input))` with the batch's own `mean` and `variance` (from
    /// [`FusedOps::fused_channel_moments`]), `input` `[batch, channels, frames]`.
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
}

/// The gradients a fused operation's backward pass gives its `N` inputs, in their order
/// (`None` for an input that is a constant, such as a padding mask).
type InputGrads<B, const N: usize> = [Option<FloatTensor<B>>; N];

/// The backward pass of a fused operation with `N` inputs: the inputs it saved (checkpointed in
/// the forward pass) and a scalar go to the inner backend's backward method, whose gradients
/// are registered on the inputs that track theirs.
#[derive(Debug)]
struct FusedBackward<B: Backend, const N: usize> {
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, f32) -> InputGrads<B, N>,
}

impl<B: Backend, const N: usize> Backward<B, N> for FusedBackward<B, N> {
    /// The saved inputs and the scalar.
    type State = (Vec<NodeId>, f32);

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
fn fused_op<B: FusedOps, C: CheckpointStrategy, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    saved: &[usize],
    scalar: f32,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, f32) -> InputGrads<B, N>,
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
        fused_op::<B, C, 3>(
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
        fused_op::<B, C, 3>(
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

    fn fused_glu_gate(
        pre: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gate: FloatTensor<Self>,
        keep: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        fused_op::<B, C, 4>(
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
        fused_op::<B, C, 5>(
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

/// Whether tensors on `device` run the fused operations (a cube backend: wgpu natively and in
/// the browser) rather than burn's composed reference.
pub fn runs_fused(device: &Device) -> bool {
    // An autodiff device answers for the device it wraps.
    matches!(device.clone().without_autodiff().as_dispatch(), DispatchDevice::Cube(_))
}

/// LayerNorm over the last axis of `input` with scale `gamma` and shift `beta` (both the last
/// axis long), fused: one kernel forward, two backward. Only for tensors on a cube backend
/// ([`runs_fused`]); burn's `LayerNorm` is the reference elsewhere.
pub fn fused_layer_norm<const D: usize>(
    input: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f32,
) -> Tensor<D> {
    Tensor::from_dispatch(Dispatch::fused_layer_norm(
        input.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        epsilon,
    ))
}

/// `swish(pre + bias) · gate`, fused: one kernel forward, one backward. `pre` is
/// `[batch, frames, units]` (a matrix product without its bias), `bias` `[units]`, `gate`
/// `[batch or 1, 1, units]`. Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_swish_gate(pre: Tensor<3>, bias: Tensor<1>, gate: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_swish_gate(
        pre.into_dispatch(),
        bias.into_dispatch(),
        gate.into_dispatch(),
    ))
}

/// The convolution module's `glu(pre + bias) · gate`, padded frames zeroed, fused: one kernel
/// forward, one backward, no slices. `pre` is `[batch, frames, 2c]` (a matrix product without
/// its bias), `bias` `[2c]`, `gate` `[batch or 1, 1, c]`, `keep` `[batch, frames]` (1 on real
/// frames, 0 on padding). Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_glu_gate(pre: Tensor<3>, bias: Tensor<1>, gate: Tensor<3>, keep: Tensor<2>) -> Tensor<3> {
    Tensor::from_dispatch(Dispatch::fused_glu_gate(
        pre.into_dispatch(),
        bias.into_dispatch(),
        gate.into_dispatch(),
        keep.into_dispatch(),
    ))
}

/// Each channel's mean and biased variance over the batch and frames of `input`
/// `[batch, channels, frames]`: BatchNorm's batch statistics, one kernel, not differentiated.
/// Only for tensors on a cube backend ([`runs_fused`]).
pub fn fused_channel_moments(input: Tensor<3>) -> (Tensor<1>, Tensor<1>) {
    let (mean, variance) = Dispatch::fused_channel_moments(input.into_dispatch());
    (Tensor::from_dispatch(mean), Tensor::from_dispatch(variance))
}

/// `swish(BatchNorm(input))` in training (normalised by the batch's own `mean` and `variance`,
/// from [`fused_channel_moments`]), fused: one kernel forward, three backward. Only for tensors
/// on a cube backend ([`runs_fused`]).
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
