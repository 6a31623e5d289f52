//! How a fused operation joins burn's autodiff graph: its forward pass runs on the inner
//! backend, and its hand-written backward pass is registered as a node (`fused_op`) that
//! checkpoints the inputs the backward needs and hands each tracked input its gradient.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend};

use super::ops::FusedOps;

/// The gradients a fused operation's backward pass gives its `N` inputs, in their order
/// (`None` for an input that is a constant, such as a padding mask).
pub(super) type InputGrads<B, const N: usize> = [Option<FloatTensor<B>>; N];

/// The backward pass of a fused operation with `N` inputs: the inputs it saved (checkpointed in
/// the forward pass) and its scalar settings `S` (an epsilon, a dropout's seed) go to the inner
/// backend's backward method, whose gradients are registered on the inputs that track theirs.
#[derive(Debug)]
struct FusedBackward<B: Backend, S, const N: usize> {
    backward: BackwardFn<B, S, N>,
}

/// A backward method, and whether it adds a gradient already registered for its first input.
#[derive(Debug)]
enum BackwardFn<B: Backend, S, const N: usize> {
    Plain(fn(FloatTensor<B>, Vec<FloatTensor<B>>, S) -> InputGrads<B, N>),
    /// Given the first input's gradient so far (`None` when nothing has registered one yet),
    /// returns that input's gradient with it added: burn's autodiff would otherwise add the
    /// two with a kernel of its own. The input is kept (as the autodiff tensor it was) to look
    /// its gradient up; later registrations still add to the result as usual.
    Accumulating(
        fn(FloatTensor<B>, Vec<FloatTensor<B>>, S, Option<FloatTensor<B>>) -> InputGrads<B, N>,
        FloatTensor<Autodiff<B>>,
    ),
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
        let input_grads = match self.backward {
            BackwardFn::Plain(backward) => backward(grad, saved, scalar),
            BackwardFn::Accumulating(backward, first_input) => {
                let so_far = grads.remove::<B>(&first_input);
                backward(grad, saved, scalar, so_far)
            }
        };
        for (parent, grad) in ops.parents.into_iter().zip(input_grads) {
            if let (Some(node), Some(grad)) = (parent, grad) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// Runs `forward` on the inner backend and, where any input is tracked, registers `backward`
/// with the inputs at `saved` (their positions in `inputs`) checkpointed for it.
pub(super) fn fused_op<
    B: FusedOps,
    C: CheckpointStrategy,
    S: Clone + Send + std::fmt::Debug + 'static,
    const N: usize,
>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    saved: &[usize],
    scalar: S,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, S) -> InputGrads<B, N>,
) -> FloatTensor<Autodiff<B, C>> {
    register::<B, C, S, N>(inputs, saved, scalar, forward, |_| BackwardFn::Plain(backward))
}

/// [`fused_op`] whose backward pass adds the gradient its first input already has (from a
/// residual connection, say) into that input's gradient itself, saving burn's add.
pub(super) fn fused_op_accumulating<
    B: FusedOps,
    C: CheckpointStrategy,
    S: Clone + Send + std::fmt::Debug + 'static,
    const N: usize,
>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    saved: &[usize],
    scalar: S,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
    backward: fn(FloatTensor<B>, Vec<FloatTensor<B>>, S, Option<FloatTensor<B>>) -> InputGrads<B, N>,
) -> FloatTensor<Autodiff<B, C>> {
    register::<B, C, S, N>(inputs, saved, scalar, forward, |first| {
        BackwardFn::Accumulating(backward, first)
    })
}

/// Registers the operation's backward pass (made by `backward` from its first input) on the
/// graph where any input is tracked, and runs `forward`.
fn register<B: FusedOps, C: CheckpointStrategy, S: Clone + Send + std::fmt::Debug + 'static, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    saved: &[usize],
    scalar: S,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
    backward: impl FnOnce(FloatTensor<Autodiff<B>>) -> BackwardFn<B, S, N>,
) -> FloatTensor<Autodiff<B, C>> {
    let nodes = std::array::from_fn(|i| inputs[i].node());
    let op = FusedBackward {
        backward: backward(inputs[0].clone()),
    };
    match op.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let ids = saved.iter().map(|&i| prep.checkpoint(&inputs[i])).collect();
            prep.finish((ids, scalar), forward(inputs.map(|t| t.into_primitive())))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(inputs.map(|t| t.into_primitive()))),
    }
}

/// The saved inputs as an array of `M` (as many as the operation saved).
pub(super) fn saved_inputs<T, const M: usize>(saved: Vec<T>) -> [T; M] {
    saved
        .try_into()
        .unwrap_or_else(|_| unreachable!("a fused operation's backward gets what its forward saved"))
}

/// Three gradients, all of inputs that can track one.
pub(super) fn all_three<T>((a, b, c): (T, T, T)) -> [Option<T>; 3] {
    [Some(a), Some(b), Some(c)]
}

/// Three inner-backend tensors as autodiff tensors that track nothing.
pub(super) fn untracked<B: Backend, C: CheckpointStrategy>(
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
