//! From gates to a smaller model, end to end: a gated run's deterministic inference logits (its
//! gates' inference masks in the dense model) equal the logits of the model that surgery builds
//! from the same gates' pruning scores, for adaptive dropout and for L0 (unit, head and
//! whole-module masks), within 1e-4.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::burn::tensor::Distribution;
use prunelab_engine::gates::Method;
use prunelab_engine::prune::{CutSource, Selection};
use prunelab_engine::readback::block_on;
use prunelab_engine::store::load_gates;
use prunelab_engine::train::{TrainConfig, Trainer};

fn gated_config(method: Method) -> TrainConfig {
    let mut config = miniature::config();
    config.model.dropout = 0.0;
    config.prune.method = method;
    // Start the gates where some units are already below threshold, so surgery has work to do.
    config.prune.adaptive_dropout.initial_logit = 0.0;
    config.prune.l0.initial_log_alpha = -1.0;
    config
}

fn check(method: Method, threshold: f64) {
    let device = Device::flex();
    let mut trainer = Trainer::new(gated_config(method), FeatureStats::identity(80), &device);
    let data = miniature::utterances(2, 6, 120, 20);
    for _ in 0..2 {
        miniature::step(&mut trainer, &data);
    }
    let state = trainer.state().unwrap();
    let gates = load_gates(&state, &device, "run")
        .unwrap()
        .expect("a gated run has gates");
    let model = trainer.inference_model();
    // Scores from the gates as saved and loaded, not the trainer's own copy.
    let source = block_on(CutSource::new(
        model.clone(),
        state.config.model.clone(),
        Some(&gates),
        &state.config.prune,
        false,
    ))
    .unwrap();
    let pruned = source.cut(Selection::Threshold(threshold)).unwrap();
    assert!(pruned.params.total() < model.num_params(), "nothing was pruned");

    let feats = Tensor::<3>::random([2, 150, 80], Distribution::Normal(0.0, 1.0), &device);
    let masks = block_on(trainer.inference_masks(threshold)).unwrap();
    let gated: Vec<f32> = model
        .forward_gated(feats.clone(), &[150, 90], &masks)
        .logits
        .try_into_vec_as()
        .unwrap();
    let smaller: Vec<f32> = pruned
        .model
        .forward(feats, &[150, 90])
        .logits
        .try_into_vec_as()
        .unwrap();
    let error = gated
        .iter()
        .zip(&smaller)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    println!(
        "{}: {} → {} parameters, max |gated - pruned| = {error:.2e}",
        method.name(),
        model.num_params(),
        pruned.params.total()
    );
    assert!(error <= 1e-4, "{}: {error}", method.name());
}

#[test]
fn adaptive_dropout_gates_prune_exactly() {
    check(Method::AdaptiveDropout, 0.5);
}

#[test]
fn l0_gates_prune_exactly_with_heads_and_modules() {
    check(Method::L0, 1e-6);
}
