//! `Trainer::warm_start`: a fresh run of any method that begins from a trained dense model (the
//! lab's trained start, `prunelab train --init-from`).

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::Method;
use prunelab_engine::model::weights_fingerprint;
use prunelab_engine::store::{decode_checkpoint, encode_checkpoint};
use prunelab_engine::train::{TrainError, Trainer, TrainerState};

/// A dense miniature trained for a few steps, with feature statistics of its own (not the
/// identity a fresh run would be given), as a weights-only state.
fn trained_start() -> TrainerState {
    let mut config = miniature::config();
    config.max_batch_frames = 400;
    config.steps = 3;
    let stats = FeatureStats {
        mean: vec![0.5; 80],
        std: vec![2.0; 80],
    };
    let mut trainer = Trainer::new(config, stats, &Device::flex());
    let data = miniature::utterances(11, 8, 150, 0);
    for _ in 0..3 {
        miniature::step(&mut trainer, &data);
    }
    trainer.state().unwrap().weights_only()
}

#[test]
fn a_warm_start_begins_at_step_zero_with_the_trained_weights_and_statistics() {
    let _turn = miniature::device_rng_turn();
    let start = trained_start();
    // Through the file format, as the lab and the CLI read it.
    let start = decode_checkpoint(&encode_checkpoint(&start), "start.plc").unwrap();
    assert!(start.optimizer.is_empty() && start.gates.is_empty());
    let trained = Trainer::restore(start.clone(), &Device::flex()).unwrap();
    let trained_weights = weights_fingerprint(&trained.inference_model()).unwrap();

    for method in [Method::AdaptiveDropout, Method::L0, Method::Magnitude] {
        let mut config = miniature::config();
        config.prune.method = method;
        config.steps = 50;
        config.model.dropout = 0.2; // a training knob, not the architecture
        let warm = Trainer::warm_start(config, &start, &Device::flex()).unwrap();
        assert_eq!(warm.step(), 0, "{method:?}");
        assert_eq!(
            warm.stats, start.stats,
            "{method:?}: the weights expect the trained model's features"
        );
        assert_eq!(
            weights_fingerprint(&warm.inference_model()).unwrap(),
            trained_weights,
            "{method:?}"
        );
        assert_eq!(
            warm.inference_gates().is_some(),
            method != Method::Magnitude,
            "{method:?}"
        );
    }
    // A fresh run of the same config draws other weights: the check above can fail.
    let fresh = Trainer::new(miniature::config(), FeatureStats::identity(80), &Device::flex());
    assert_ne!(weights_fingerprint(&fresh.inference_model()).unwrap(), trained_weights);
}

#[test]
fn a_warm_start_refuses_another_architecture_a_pruned_model_or_other_features() {
    let _turn = miniature::device_rng_turn();
    let start = trained_start();
    let refused = |edit: &dyn Fn(&mut prunelab_engine::train::TrainConfig), start: &TrainerState| {
        let mut config = miniature::config();
        edit(&mut config);
        match Trainer::warm_start(config, start, &Device::flex()) {
            Err(TrainError::StartMismatch(detail)) => detail,
            Err(other) => panic!("wrong error: {other}"),
            Ok(_) => panic!("a mismatched start was accepted"),
        }
    };
    assert!(refused(&|c| c.model.d_model = 48, &start).contains("tiny"));
    assert!(refused(&|c| c.model.num_blocks = 3, &start).contains("tiny"));
    assert!(refused(&|c| c.fbank.preemphasis = 0.9, &start).contains("filterbank"));
    let mut pruned = start.clone();
    let shapes = Trainer::restore(start.clone(), &Device::flex())
        .unwrap()
        .inference_model()
        .block_shapes();
    pruned.config.model.block_shapes = Some(shapes);
    assert!(refused(&|_| {}, &pruned).contains("pruned"));
}
