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
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn fused_layer_norm(
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNormBackward;

        impl<B: FusedOps> Backward<B, 3> for LayerNormBackward {
            /// The input and γ (the statistics are recomputed: a row is one pass over memory
            /// that the backward kernel reads anyway), and ε.
            type State = (NodeId, NodeId, f32);

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
                let (input, gamma, epsilon) = ops.state;
                let input = checkpointer.retrieve_node_output(input);
                let gamma = checkpointer.retrieve_node_output(gamma);
                let grad = grads.consume::<B>(&ops.node);
                let (grad_input, grad_gamma, grad_beta) = B::fused_layer_norm_backward(grad, input, gamma, epsilon);
                let [input_node, gamma_node, beta_node] = ops.parents;
                for (node, grad) in [
                    (input_node, grad_input),
                    (gamma_node, grad_gamma),
                    (beta_node, grad_beta),
                ] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, grad);
                    }
                }
            }
        }

        match LayerNormBackward
            .prepare::<C>([input.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = (prep.checkpoint(&input), prep.checkpoint(&gamma), epsilon);
                prep.finish(
                    state,
                    B::fused_layer_norm(
                        input.into_primitive(),
                        gamma.into_primitive(),
                        beta.into_primitive(),
                        epsilon,
                    ),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_layer_norm(
                input.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                epsilon,
            )),
        }
    }

    /// Not differentiated itself (Prunelab takes no second-order gradients): computed on the
    /// inner backend, its results untracked.
    fn fused_layer_norm_backward(
        grad: FloatTensor<Self>,
        input: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let (grad_input, grad_gamma, grad_beta) =
            B::fused_layer_norm_backward(Self::inner(grad), Self::inner(input), Self::inner(gamma), epsilon);
        (
            Self::from_inner(grad_input),
            Self::from_inner(grad_gamma),
            Self::from_inner(grad_beta),
        )
    }
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
