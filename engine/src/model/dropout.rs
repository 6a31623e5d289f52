//! Dropout whose masks can come from a seeded host stream instead of the backend's generator.
//!
//! burn's CPU backend draws random numbers from one process-wide generator. When a batch is
//! split over threads (`TrainConfig::shards`), the threads' draws would interleave in whatever
//! order the scheduler picks, and a run would no longer be reproducible. A thread that runs
//! inside [`with_dropout_stream`] instead draws every dropout mask from its own SplitMix64
//! stream, on the host, in the order its forward pass asks for them. Outside such a scope the
//! layer is burn's own dropout, unchanged (so single-threaded training and WebGPU, where a
//! host-made mask would cost an upload per layer, keep the device generator).
//!
//! Every dropout but the subsampling's (the modules' outputs, the feed-forward hidden layers,
//! the attention weights) is hashed instead ([`hashed_draw`], `kernels::HashedDropout`): each
//! call takes a seed, from the thread's stream where one is set and from its own seed stream
//! otherwise (reseeded by the trainer each step, [`seed_hashed_dropout`]), and the mask is a
//! hash of the seed and each element's position, computed inside the fused kernels or uploaded
//! by the composed path ([`apply_hashed`]).

use std::cell::RefCell;

use burn::nn::Dropout;
use burn::prelude::*;

use crate::kernels::HashedDropout;
use crate::rng::SplitMix64;

thread_local! {
    static STREAM: RefCell<Option<SplitMix64>> = const { RefCell::new(None) };
    /// Seeds of the hashed masks (the modules' outputs, the feed-forward hidden layers, the
    /// attention weights) when no dropout stream is set; a trainer reseeds it each step
    /// ([`seed_hashed_dropout`]).
    static HASH_SEEDS: RefCell<SplitMix64> = const { RefCell::new(SplitMix64::new(0)) };
}

/// Starts this thread's seeds of hashed dropout masks from `seed`: the trainer calls it each
/// step with a seed derived from the run's and the step's, so a resumed run hashes what the
/// uninterrupted one did.
pub fn seed_hashed_dropout(seed: u64) {
    HASH_SEEDS.with(|s| *s.borrow_mut() = SplitMix64::new(seed));
}

/// The hashed dropout of one call of `layer`: keyed by the next seed of this thread's stream
/// where the layer drops anything (burn's conditions: training on, an autodiff device, p > 0),
/// keeping everything otherwise; `weight` is folded into the multiplier.
pub(crate) fn hashed_draw(layer: &Dropout, device: &Device, weight: f32) -> HashedDropout {
    if !layer.training.is_enabled() || !device.is_autodiff() || layer.prob == 0.0 {
        return HashedDropout::none(weight);
    }
    HashedDropout::new(next_hashed_dropout_seed(), 1.0 - layer.prob, weight)
}

/// `x` through `drop` with burn's operations (the composed path): the mask made on the host and
/// uploaded, or only the multiplier where nothing is dropped.
pub(crate) fn apply_hashed<const D: usize>(x: Tensor<D>, drop: HashedDropout) -> Tensor<D> {
    if drop.drops_nothing() {
        return if drop.multiplier == 1.0 {
            x
        } else {
            x.mul_scalar(drop.multiplier)
        };
    }
    let shape = x.shape();
    let mask = Tensor::<D>::from_data(TensorData::new(drop.mask(shape.num_elements()), shape), &x.device());
    x * mask
}

/// The seed of the next hashed dropout mask: from the dropout stream where one is set (a
/// shard's), from this thread's seeds otherwise.
fn next_hashed_dropout_seed() -> u64 {
    STREAM
        .with(|s| s.borrow_mut().as_mut().map(SplitMix64::next_u64))
        .unwrap_or_else(|| HASH_SEEDS.with(|s| s.borrow_mut().next_u64()))
}

/// Runs `work` with this thread's dropout masks drawn from a stream seeded with `seed`.
pub fn with_dropout_stream<R>(seed: u64, work: impl FnOnce() -> R) -> R {
    let previous = STREAM.with(|s| s.replace(Some(SplitMix64::new(seed))));
    let result = work();
    STREAM.with(|s| *s.borrow_mut() = previous);
    result
}

/// `layer` applied to `x`, with its mask from this thread's stream when one is set.
pub(crate) fn dropout<const D: usize>(layer: &Dropout, x: Tensor<D>) -> Tensor<D> {
    // The same conditions as burn's layer: training flag on, an autodiff device, p > 0.
    if !layer.training.is_enabled() || !x.device().is_autodiff() || layer.prob == 0.0 {
        return x;
    }
    let keep = 1.0 - layer.prob;
    let shape = x.shape();
    let mask = STREAM.with(|s| {
        s.borrow_mut().as_mut().map(|rng| {
            let scale = (1.0 / keep) as f32;
            (0..shape.num_elements())
                .map(|_| if rng.next_f64() < keep { scale } else { 0.0 })
                .collect::<Vec<f32>>()
        })
    });
    match mask {
        Some(mask) => {
            let device = x.device();
            x * Tensor::<D>::from_data(TensorData::new(mask, shape), &device)
        }
        None => layer.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::DropoutConfig;

    #[test]
    fn a_stream_gives_the_same_mask_for_the_same_seed_and_keeps_the_expectation() {
        let device = Device::flex().autodiff();
        let layer = DropoutConfig::new(0.25).init();
        let ones = || Tensor::<2>::ones([64, 64], &device);
        let draw = |seed| -> Vec<f32> {
            with_dropout_stream(seed, || dropout(&layer, ones()))
                .try_into_vec_as()
                .unwrap()
        };
        let (a, b, c) = (draw(7), draw(7), draw(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        assert!(
            (mean - 1.0).abs() < 0.05,
            "inverted dropout keeps the mean at 1, got {mean}"
        );
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.75).abs() < 1e-6));
    }

    #[test]
    fn without_autodiff_or_outside_training_nothing_is_dropped() {
        let layer = DropoutConfig::new(0.5).init();
        let plain = Tensor::<1>::ones([100], &Device::flex());
        let out: Vec<f32> = with_dropout_stream(1, || dropout(&layer, plain))
            .try_into_vec_as()
            .unwrap();
        assert!(out.iter().all(|&v| v == 1.0));
    }
}
