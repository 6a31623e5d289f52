//! The CTC loss and its gradient, fused: the log-softmax, the forward (α) recursion and each
//! utterance's loss in one dispatch, and backward the β recursion and the logits' gradient in
//! another. Composed, burn's log-softmax, CTC loss, infinity mask and per-token mean and their
//! backward passes took about 38 dispatches of a `tiny` step; here it is 2 (and burn's mean over
//! the batch).
//!
//! One cube per utterance walks its frames, the states of the extended target `l'` (blanks
//! between and around the tokens, `2L + 1` states) in workgroup memory, two rows (this frame's
//! and the last), one barrier a frame. Log-probabilities are `logit − lse` with each frame's
//! log-sum-exp computed where it is needed. In log space, with α and β both including the
//! frame's emission (Graves 2006) and `ln p = logsumexp(α_T(S−1), α_T(S−2))`:
//! - the utterance's loss is `−ln p / L` (PyTorch's "mean" divides by the target's length; the
//!   batch mean follows), or 0 where no alignment exists (`zero_infinity`);
//! - the gradient of `−ln p` with respect to `logit[t, v]` is `y_t(v) − Σ_{s: l'_s = v}
//!   exp(α_t(s) + β_t(s) − ln y_t(v) − ln p)`, `y` the softmax; 0 on padded frames.
//!
//! The forward pass keeps every frame's α (`[batch, frames, cap]`) for the backward pass.
//!
//! The loops that reach a barrier run over a count read from the plan, the same for every unit
//! of the cube (WGSL requires barriers in uniform control flow).

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::launch::empty_like;

/// The units of a cube.
const UNITS: u32 = 256;

/// ln 0's stand-in (WGSL has no infinity literal); anything below [`UNREACHABLE`] counts as it.
const LOG_ZERO: f32 = -1.0e30;
const UNREACHABLE: f32 = -1.0e29;

/// The blank's class (`text::BLANK`).
const BLANK: usize = 0;

/// `ln(eᵃ + eᵇ)`, with [`LOG_ZERO`] for ln 0.
#[cube]
fn log_add<F: Float>(a: F, b: F) -> F {
    let mut high = a;
    let mut low = b;
    if b > a {
        high = b;
        low = a;
    }
    let mut sum = high;
    if high > F::new(UNREACHABLE) {
        sum = high + F::ln(F::new(1.0) + F::exp(low - high));
    }
    sum
}

/// `ln Σ_v exp(logit[n, t, v])`.
#[cube]
fn log_sum_exp<F: Float>(logits: &Tensor<F>, row: usize, classes: usize) -> F {
    let mut high = logits[row * classes];
    for v in 1..classes {
        high = F::max(high, logits[row * classes + v]);
    }
    let mut sum = F::new(0.0);
    for v in 0..classes {
        sum += F::exp(logits[row * classes + v] - high);
    }
    high + F::ln(sum)
}

/// The class of state `s` of utterance `n`'s extended target: the blank on even states, token
/// `(s − 1)/2` on odd ones (the plan's row holds the frames, the target's length, the tokens).
#[cube]
fn label<F: Float>(plan: &Tensor<F>, n: usize, s: usize) -> usize {
    // (A literal: the blank's class, `BLANK`, as a value the branch can change.)
    let mut class = 0usize;
    if s % 2 == 1 {
        class = u32::cast_from(plan[n * plan.shape(1) + 2 + (s - 1) / 2]) as usize;
    }
    class
}

/// Utterance `n`'s frames and its target's length, from the plan.
#[cube]
fn lengths<F: Float>(plan: &Tensor<F>, n: usize) -> (usize, usize) {
    let row = n * plan.shape(1);
    (
        u32::cast_from(plan[row]) as usize,
        u32::cast_from(plan[row + 1]) as usize,
    )
}

/// What an utterance's `−ln p` is divided by: its target's length, at least 1 (PyTorch's
/// "mean" divides by the target's length; an empty target keeps its loss as it is).
#[cube]
fn per_token<F: Float>(target_len: usize) -> F {
    let mut tokens = target_len;
    if tokens == 0 {
        tokens = 1;
    }
    F::cast_from(tokens as u32)
}

/// `ln p` from the α of the utterance's last frame (`alphas`, `[batch, frames, cap]`).
#[cube]
fn log_likelihood<F: Float>(alphas: &Tensor<F>, n: usize, frames: usize, states: usize, cap: usize) -> F {
    let mut log_p = F::new(LOG_ZERO);
    if frames > 0 {
        let last = (n * alphas.shape(1) + frames - 1) * cap;
        log_p = alphas[last + states - 1];
        if states >= 2 {
            log_p = log_add::<F>(log_p, alphas[last + states - 2]);
        }
    }
    log_p
}

#[cube(launch)]
fn forward_kernel<F: Float>(
    logits: &Tensor<F>,
    plan: &Tensor<F>,
    losses: &mut Tensor<F>,
    alphas: &mut Tensor<F>,
    #[comptime] cap: usize,
    #[define(F)] _dtype: ElemType,
) {
    let n = CUBE_POS;
    let (frames, target_len) = lengths::<F>(plan, n);
    let states = 2 * target_len + 1;
    let (padded, classes) = (logits.shape(1), logits.shape(2));
    let unit = UNIT_POS as usize;
    let step = UNITS as usize;
    let mut alpha = Shared::<[F]>::new_slice(2 * cap);
    let row = n * padded;
    // Frame 0: only the first blank and the first token can start a path.
    if frames > 0 {
        let lse = log_sum_exp::<F>(logits, row, classes);
        let mut s = unit;
        while s < states {
            let mut a = F::new(LOG_ZERO);
            if s < 2 {
                a = logits[row * classes + label::<F>(plan, n, s)] - lse;
            }
            alpha[s] = a;
            alphas[row * cap + s] = a;
            s += step;
        }
    }
    sync_cube();
    for t in 1..frames {
        let (now, before) = ((t % 2) * cap, ((t + 1) % 2) * cap);
        let lse = log_sum_exp::<F>(logits, row + t, classes);
        let mut s = unit;
        while s < states {
            let class = label::<F>(plan, n, s);
            let mut a = alpha[before + s];
            if s >= 1 {
                a = log_add::<F>(a, alpha[before + s - 1]);
            }
            if s >= 2 && class != BLANK && class != label::<F>(plan, n, s - 2) {
                a = log_add::<F>(a, alpha[before + s - 2]);
            }
            a += logits[(row + t) * classes + class] - lse;
            alpha[now + s] = a;
            alphas[(row + t) * cap + s] = a;
            s += step;
        }
        sync_cube();
    }
    if unit == 0 {
        // ln p from the last frame's row, still in workgroup memory.
        let mut log_p = F::new(LOG_ZERO);
        if frames > 0 {
            let last = ((frames - 1) % 2) * cap;
            log_p = alpha[last + states - 1];
            if states >= 2 {
                log_p = log_add::<F>(log_p, alpha[last + states - 2]);
            }
        }
        let mut loss = F::new(0.0);
        if log_p > F::new(UNREACHABLE) {
            loss = -log_p / per_token::<F>(target_len);
        }
        losses[n] = loss;
    }
}

#[cube(launch)]
fn backward_kernel<F: Float>(
    grad_losses: &Tensor<F>,
    logits: &Tensor<F>,
    plan: &Tensor<F>,
    alphas: &Tensor<F>,
    grad: &mut Tensor<F>,
    #[comptime] cap: usize,
    #[define(F)] _dtype: ElemType,
) {
    let n = CUBE_POS;
    let (frames, target_len) = lengths::<F>(plan, n);
    let states = 2 * target_len + 1;
    let (padded, classes) = (logits.shape(1), logits.shape(2));
    let unit = UNIT_POS as usize;
    let step = UNITS as usize;
    let row = n * padded;
    let log_p = log_likelihood::<F>(alphas, n, frames, states, cap);
    // No alignment (the loss was zeroed) gives no gradient.
    let reachable = log_p > F::new(UNREACHABLE);
    let scale = grad_losses[n] / per_token::<F>(target_len);
    // Padded frames: no gradient.
    let mut at = frames * classes + unit;
    while at < padded * classes {
        grad[row * classes + at] = F::new(0.0);
        at += step;
    }
    let mut beta = Shared::<[F]>::new_slice(2 * cap);
    if frames > 0 {
        let last = frames - 1;
        let lse = log_sum_exp::<F>(logits, row + last, classes);
        let mut s = unit;
        while s < states {
            let mut b = F::new(LOG_ZERO);
            if s + 2 >= states {
                b = logits[(row + last) * classes + label::<F>(plan, n, s)] - lse;
            }
            beta[(last % 2) * cap + s] = b;
            s += step;
        }
    }
    sync_cube();
    for i in 0..frames {
        let t = frames - 1 - i;
        let (now, earlier) = ((t % 2) * cap, ((t + 1) % 2) * cap);
        let lse = log_sum_exp::<F>(logits, row + t, classes);
        // This frame's gradient, a unit per class.
        let mut v = unit;
        while v < classes {
            let mut occupancy = F::new(LOG_ZERO);
            let alpha_row = (row + t) * cap;
            if v == BLANK {
                let mut s = 0;
                while s < states {
                    occupancy = log_add::<F>(occupancy, alphas[alpha_row + s] + beta[now + s]);
                    s += 2;
                }
            } else {
                for j in 0..target_len {
                    if label::<F>(plan, n, 2 * j + 1) == v {
                        let s = 2 * j + 1;
                        occupancy = log_add::<F>(occupancy, alphas[alpha_row + s] + beta[now + s]);
                    }
                }
            }
            let log_y = logits[(row + t) * classes + v] - lse;
            let mut g = F::new(0.0);
            if reachable {
                g = scale * (F::exp(log_y) - F::exp(occupancy - log_y - log_p));
            }
            grad[(row + t) * classes + v] = g;
            v += step;
        }
        // The β of the frame before.
        if t >= 1 {
            let lse_before = log_sum_exp::<F>(logits, row + t - 1, classes);
            let mut s = unit;
            while s < states {
                let class = label::<F>(plan, n, s);
                let mut b = beta[now + s];
                if s + 1 < states {
                    b = log_add::<F>(b, beta[now + s + 1]);
                }
                if s + 2 < states && class != BLANK && class != label::<F>(plan, n, s + 2) {
                    b = log_add::<F>(b, beta[now + s + 2]);
                }
                beta[earlier + s] = b + logits[(row + t - 1) * classes + class] - lse_before;
                s += step;
            }
        }
        sync_cube();
    }
}

/// The states' room in workgroup memory for targets of at most `max_target_len` tokens: a power
/// of two (a few kernel variants rather than one per batch), `None` past WebGPU's guaranteed
/// 16 KiB of workgroup memory (two rows of f32).
pub fn state_capacity(max_target_len: usize) -> Option<usize> {
    let cap = (2 * max_target_len + 1).next_power_of_two().max(32);
    (2 * cap * 4 <= 16 * 1024).then_some(cap)
}

/// Each utterance's loss `−ln p / L` (0 where no alignment exists), `[batch]`, and every frame's
/// α for the backward pass, from `logits` `[batch, frames, classes]` and the `plan` `[batch,
/// 2 + tokens]` (frames, target length, tokens; as floats).
pub(super) fn forward(logits: CubeTensor, plan: CubeTensor, cap: usize) -> (CubeTensor, CubeTensor) {
    let (logits, plan) = (into_contiguous(logits), into_contiguous(plan));
    let [batches, frames, _] = logits.shape().dims::<3>();
    let losses = empty_like(&logits, Shape::new([batches]));
    let alphas = empty_like(&logits, Shape::new([batches, frames, cap]));
    let dtype = dtype_to_storage_type(logits.dtype);
    forward_kernel::launch(
        &logits.client.clone(),
        CubeCount::Static(batches as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        logits.into_tensor_arg(),
        plan.into_tensor_arg(),
        losses.clone().into_tensor_arg(),
        alphas.clone().into_tensor_arg(),
        cap,
        dtype,
    );
    (losses, alphas)
}

/// The logits' gradient from the losses' (`[batch]`) and what the forward pass kept.
pub(super) fn backward(
    grad_losses: CubeTensor,
    logits: CubeTensor,
    plan: CubeTensor,
    alphas: CubeTensor,
    cap: usize,
) -> CubeTensor {
    let (grad_losses, logits) = (into_contiguous(grad_losses), into_contiguous(logits));
    let (plan, alphas) = (into_contiguous(plan), into_contiguous(alphas));
    let batches = logits.shape()[0];
    let grad = empty_like(&logits, logits.shape());
    let dtype = dtype_to_storage_type(logits.dtype);
    backward_kernel::launch(
        &logits.client.clone(),
        CubeCount::Static(batches as u32, 1, 1),
        CubeDim::new_1d(UNITS),
        grad_losses.into_tensor_arg(),
        logits.into_tensor_arg(),
        plan.into_tensor_arg(),
        alphas.into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        cap,
        dtype,
    );
    grad
}
