//! The attention weights from the raw scores, fused: the scale, the learned relative-position
//! bias, the mask on padded keys and the softmax,
//! `w[b, h, i, ·] = softmax_j(scale · q·k[b, h, i, j] + β[clamp(j − i, −R, R) + R, h])` with padded
//! keys left out, then the attention dropout (hashed: `hashed_dropout.rs`). Forward one kernel
//! (a unit per row of scores); backward three: the scores' gradient row by row, then the bias's
//! gradient as sums along the diagonals of that gradient, folded into the bias's clipped
//! distances.
//!
//! Composed, the same function gathers the bias into a `[h, s, s]` tensor (an index upload, a
//! `select` and a permute), masks, and runs burn's softmax (a max, an exponential, a sum, a
//! division); its backward scatters back into the bias, ~15 kernels a block in all.
//!
//! With `d` the gradient of the weights and `⟨d, w⟩` its dot product with a row's weights:
//! dlogit = w·(d − ⟨d, w⟩), dscore = scale·dlogit, dβ[r, h] = Σ dlogit over the pairs (b, i, j)
//! whose clipped distance is `r − R`.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::hashed_dropout::{HashedDropout, hashed_index_count};
use super::kept::kept;
use super::launch::{empty_like, launch_shape};

/// The masked logit of key `j` in the row of query `i`: a padded key gets the large finite
/// negative value the composed path fills in (so a row stays finite even if all were padded).
#[cube]
#[allow(clippy::too_many_arguments)]
fn logit<F: Float>(
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    keep: &Tensor<F>,
    start: usize,
    key_row: usize,
    head: usize,
    heads: usize,
    i: usize,
    j: usize,
    reach: u32,
    scale: f32,
) -> F {
    let mut value = F::new(-1e9);
    if keep[key_row + j] != F::new(0.0) {
        let reach = reach as i32;
        let mut distance = j as i32 - i as i32;
        if distance < -reach {
            distance = -reach;
        }
        if distance > reach {
            distance = reach;
        }
        let bucket = (distance + reach) as usize;
        value = scores[start + j] * F::cast_from(scale) + bias[bucket * heads + head];
    }
    value
}

/// Where row `row` of the scores lies: its query `i`, its head, the index of its first score and
/// of its batch's first `keep` entry.
#[cube]
fn row_place(row: usize, frames: usize, heads: usize) -> (usize, usize, usize, usize) {
    let batch = row / (frames * heads);
    (row % frames, (row / frames) % heads, row * frames, batch * frames)
}

/// A row's largest logit and the sum of the exponentials around it.
#[cube]
#[allow(clippy::too_many_arguments)]
fn row_softmax_terms<F: Float>(
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    keep: &Tensor<F>,
    row: usize,
    frames: usize,
    heads: usize,
    reach: u32,
    scale: f32,
) -> (F, F) {
    let (i, head, start, key_row) = row_place(row, frames, heads);
    let mut largest = F::new(-3.0e38);
    for j in 0..frames {
        let l = logit::<F>(scores, bias, keep, start, key_row, head, heads, i, j, reach, scale);
        if l > largest {
            largest = l;
        }
    }
    let mut sum = F::new(0.0);
    for j in 0..frames {
        let l = logit::<F>(scores, bias, keep, start, key_row, head, heads, i, j, reach, scale);
        sum += (l - largest).exp();
    }
    (largest, sum)
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float>(
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    keep: &Tensor<F>,
    weights: &mut Tensor<F>,
    rows: u32,
    frames: u32,
    heads: u32,
    reach: u32,
    scale: f32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS as usize;
    if row >= rows as usize {
        terminate!();
    }
    let (frames, heads) = (frames as usize, heads as usize);
    let (largest, sum) = row_softmax_terms::<F>(scores, bias, keep, row, frames, heads, reach, scale);
    let (i, head, start, key_row) = row_place(row, frames, heads);
    let multiplier = F::cast_from(multiplier);
    for j in 0..frames {
        let l = logit::<F>(scores, bias, keep, start, key_row, head, heads, i, j, reach, scale);
        let k = kept::<F>((start + j) as u32, seed, threshold, multiplier);
        weights[start + j] = (l - largest).exp() / sum * k;
    }
}

/// The scores' gradient, row by row (the weights recomputed, not saved).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn scores_grad_kernel<F: Float>(
    grad: &Tensor<F>,
    scores: &Tensor<F>,
    bias: &Tensor<F>,
    keep: &Tensor<F>,
    grad_scores: &mut Tensor<F>,
    rows: u32,
    frames: u32,
    heads: u32,
    reach: u32,
    scale: f32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    #[define(F)] _dtype: ElemType,
) {
    let row = ABSOLUTE_POS as usize;
    if row >= rows as usize {
        terminate!();
    }
    let (frames, heads) = (frames as usize, heads as usize);
    let (largest, sum) = row_softmax_terms::<F>(scores, bias, keep, row, frames, heads, reach, scale);
    let (i, head, start, key_row) = row_place(row, frames, heads);
    let multiplier = F::cast_from(multiplier);
    // `grad` is the dropped weights'; the softmax's own is that times the same mask.
    let mut dot = F::new(0.0);
    for j in 0..frames {
        let l = logit::<F>(scores, bias, keep, start, key_row, head, heads, i, j, reach, scale);
        let k = kept::<F>((start + j) as u32, seed, threshold, multiplier);
        dot += grad[start + j] * k * (l - largest).exp() / sum;
    }
    for j in 0..frames {
        let l = logit::<F>(scores, bias, keep, start, key_row, head, heads, i, j, reach, scale);
        let k = kept::<F>((start + j) as u32, seed, threshold, multiplier);
        let w = (l - largest).exp() / sum;
        grad_scores[start + j] = w * (grad[start + j] * k - dot) * F::cast_from(scale);
    }
}

/// `[2s − 1, h]`: the scores' gradient summed along each diagonal `j − i = o − (s − 1)` of each
/// head, over the batch.
#[cube(launch)]
fn diagonal_sums_kernel<F: Float>(
    grad_scores: &Tensor<F>,
    sums: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    heads: u32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    let (frames, heads) = (frames as usize, heads as usize);
    if at >= (2 * frames - 1) * heads {
        terminate!();
    }
    let (diagonal, head) = (at / heads, at % heads);
    // Key j = i + diagonal − (s − 1): queries from `first` on have their key inside the row.
    let mut first = 0;
    let mut count = 2 * frames - 1 - diagonal;
    if diagonal < frames - 1 {
        first = frames - 1 - diagonal;
        count = diagonal + 1;
    }
    let mut sum = F::new(0.0);
    for batch in 0..batches as usize {
        for k in 0..count {
            let i = first + k;
            let j = i + diagonal + 1 - frames;
            sum += grad_scores[((batch * heads + head) * frames + i) * frames + j];
        }
    }
    sums[at] = sum;
}

/// `[2R + 1, h]`: the bias's gradient, each clipped distance the sum of its diagonals (the two
/// ends take every diagonal beyond them), divided by the scale the scores' gradient carries.
#[cube(launch)]
fn bias_grad_kernel<F: Float>(
    sums: &Tensor<F>,
    grad_bias: &mut Tensor<F>,
    frames: u32,
    heads: u32,
    reach: u32,
    scale: f32,
    #[define(F)] _dtype: ElemType,
) {
    let at = ABSOLUTE_POS as usize;
    let (frames, heads, reach) = (frames as i32, heads as usize, reach as i32);
    if at >= (2 * reach as usize + 1) * heads {
        terminate!();
    }
    let (bucket, head) = ((at / heads) as i32, at % heads);
    let distance = bucket - reach;
    // The diagonals (distances j − i, from −(s − 1) to s − 1) this bucket collects.
    let mut low = distance;
    let mut high = distance;
    if distance == -reach {
        low = -(frames - 1);
    }
    if distance == reach {
        high = frames - 1;
    }
    if low < -(frames - 1) {
        low = -(frames - 1);
    }
    if high > frames - 1 {
        high = frames - 1;
    }
    let mut sum = F::new(0.0);
    let mut d = low;
    while d <= high {
        sum += sums[(d + frames - 1) as usize * heads + head];
        d += 1;
    }
    grad_bias[at] = sum / F::cast_from(scale);
}

/// `[b, h, s, s]` scores, `[2R + 1, h]` bias, `[b, s]` keep (0 on padded keys).
fn dims(scores: &CubeTensor, bias: &CubeTensor) -> ([usize; 4], u32) {
    let [batches, heads, frames, keys] = scores.shape().dims::<4>();
    assert_eq!(frames, keys, "attention scores are square per head");
    let buckets = bias.shape()[0];
    assert!(buckets % 2 == 1, "the relative-position bias has 2R + 1 rows");
    ([batches, heads, frames, keys], ((buckets - 1) / 2) as u32)
}

/// The attention weights from the raw scores, `dropout` applied.
pub(super) fn forward(
    scores: CubeTensor,
    bias: CubeTensor,
    keep: CubeTensor,
    scale: f32,
    dropout: HashedDropout,
) -> CubeTensor {
    hashed_index_count(scores.shape().num_elements());
    let (scores, bias, keep) = (into_contiguous(scores), into_contiguous(bias), into_contiguous(keep));
    let ([batches, heads, frames, _], reach) = dims(&scores, &bias);
    let rows = batches * heads * frames;
    let weights = empty_like(&scores, scores.shape());
    let (count, dim) = launch_shape(&scores, rows);
    let dtype = dtype_to_storage_type(scores.dtype);
    let client = scores.client.clone();
    forward_kernel::launch(
        &client,
        count,
        dim,
        scores.into_tensor_arg(),
        bias.into_tensor_arg(),
        keep.into_tensor_arg(),
        weights.clone().into_tensor_arg(),
        rows as u32,
        frames as u32,
        heads as u32,
        reach,
        scale,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        dtype,
    );
    weights
}

/// The gradients of the scores and of the bias from the (dropped) weights'.
pub(super) fn backward(
    grad: CubeTensor,
    scores: CubeTensor,
    bias: CubeTensor,
    keep: CubeTensor,
    scale: f32,
    dropout: HashedDropout,
) -> (CubeTensor, CubeTensor) {
    let (grad, scores) = (into_contiguous(grad), into_contiguous(scores));
    let (bias, keep) = (into_contiguous(bias), into_contiguous(keep));
    let ([batches, heads, frames, _], reach) = dims(&scores, &bias);
    let rows = batches * heads * frames;
    let dtype = dtype_to_storage_type(scores.dtype);
    let client = scores.client.clone();
    let grad_scores = empty_like(&scores, scores.shape());
    let (count, dim) = launch_shape(&scores, rows);
    scores_grad_kernel::launch(
        &client,
        count,
        dim,
        grad.into_tensor_arg(),
        scores.clone().into_tensor_arg(),
        bias.clone().into_tensor_arg(),
        keep.into_tensor_arg(),
        grad_scores.clone().into_tensor_arg(),
        rows as u32,
        frames as u32,
        heads as u32,
        reach,
        scale,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        dtype,
    );
    let diagonals = 2 * frames - 1;
    let sums = empty_like(&scores, Shape::new([diagonals, heads]));
    let (count, dim) = launch_shape(&scores, diagonals * heads);
    diagonal_sums_kernel::launch(
        &client,
        count,
        dim,
        grad_scores.clone().into_tensor_arg(),
        sums.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        heads as u32,
        dtype,
    );
    let grad_bias = empty_like(&bias, bias.shape());
    let (count, dim) = launch_shape(&bias, bias.shape().num_elements());
    bias_grad_kernel::launch(
        &client,
        count,
        dim,
        sums.into_tensor_arg(),
        grad_bias.clone().into_tensor_arg(),
        frames as u32,
        heads as u32,
        reach,
        scale,
        dtype,
    );
    (grad_scores, grad_bias)
}
