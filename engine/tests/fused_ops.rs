//! Fused operations against burn's composed reference, both on wgpu (lavapipe on machines
//! without a GPU): the forward values and the gradients of the input and of every parameter,
//! on a `tiny`-sized batch (2,000 rows of 144), odd widths, and a single row.
//!
//! Tolerance: the largest absolute difference at most 1e-4 × the largest magnitude of the
//! reference (at least 1). Both paths sum in f32 in different orders, so they differ by rounding.
#![cfg(feature = "wgpu")]

#[allow(dead_code)] // only its wgpu device is used here
mod miniature;

use miniature::wgpu_device;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::burn::tensor::Distribution;
use prunelab_engine::kernels::{fused_layer_norm, runs_fused};

/// `fused` against `reference`: their largest absolute difference relative to the reference's
/// scale, checked against the tolerance of the module header.
fn assert_close<const D: usize>(what: &str, fused: Tensor<D>, reference: Tensor<D>) -> f32 {
    let (fused, reference): (Vec<f32>, Vec<f32>) =
        (fused.try_into_vec_as().unwrap(), reference.try_into_vec_as().unwrap());
    assert_eq!(fused.len(), reference.len(), "{what}");
    let scale = reference.iter().fold(1.0_f32, |m, x| m.max(x.abs()));
    let worst = fused
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "{what}: largest difference {worst:e} (scale {scale})"
    );
    worst / scale
}

/// A leaf that tracks its gradient, with the values of `like` (so both paths start equal).
fn leaf<const D: usize>(like: &Tensor<D>) -> Tensor<D> {
    Tensor::from_data(like.to_data(), &like.device()).require_grad()
}

#[test]
fn fused_layer_norm_and_its_gradients_match_burns_composed_layer_norm() {
    let device = wgpu_device().autodiff();
    assert!(runs_fused(&device) && !runs_fused(&Device::flex()));
    let epsilon = 1e-5;
    for [batch, frames, width] in [[8, 250, 144], [3, 7, 33], [1, 1, 5]] {
        let x = Tensor::<3>::random([batch, frames, width], Distribution::Normal(0.5, 2.0), &device);
        let gamma = Tensor::<1>::random([width], Distribution::Normal(1.0, 0.3), &device);
        let beta = Tensor::<1>::random([width], Distribution::Normal(0.0, 0.3), &device);
        // The gradient arriving from above: a fixed random weighting of the outputs.
        let upstream = Tensor::<3>::random([batch, frames, width], Distribution::Normal(0.0, 1.0), &device);
        let (fx, fg, fb) = (leaf(&x), leaf(&gamma), leaf(&beta));
        let (rx, rg, rb) = (leaf(&x), leaf(&gamma), leaf(&beta));
        let fused = fused_layer_norm(fx.clone(), fg.clone(), fb.clone(), epsilon);
        let reference = prunelab_engine::burn::tensor::module::layer_norm(
            rx.clone(),
            rg.clone(),
            Some(rb.clone()),
            f64::from(epsilon),
        );
        let shape = format!("[{batch}, {frames}, {width}]");
        let mut worst = vec![assert_close(
            &format!("{shape} output"),
            fused.clone(),
            reference.clone(),
        )];
        let fused_grads = (fused * upstream.clone()).sum().backward();
        let reference_grads = (reference * upstream).sum().backward();
        worst.push(assert_close(
            &format!("{shape} dx"),
            fx.grad(&fused_grads).unwrap(),
            rx.grad(&reference_grads).unwrap(),
        ));
        worst.push(assert_close(
            &format!("{shape} dγ"),
            fg.grad(&fused_grads).unwrap(),
            rg.grad(&reference_grads).unwrap(),
        ));
        worst.push(assert_close(
            &format!("{shape} dβ"),
            fb.grad(&fused_grads).unwrap(),
            rb.grad(&reference_grads).unwrap(),
        ));
        let worst: Vec<String> = worst.iter().map(|w| format!("{w:.2e}")).collect();
        eprintln!(
            "{shape}: largest differences relative to scale (output, dx, dγ, dβ) {}",
            worst.join(", ")
        );
    }
}
