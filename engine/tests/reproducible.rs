//! Training is seeded: the same seed gives the same losses on the CPU backend, another seed
//! does not.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::train::{TrainEvent, Trainer};

fn losses(seed: u64) -> Vec<f32> {
    let _turn = miniature::device_rng_turn();
    let mut config = miniature::config();
    config.seed = seed;
    config.max_batch_frames = 400;
    let data = miniature::utterances(11, 8, 150, 0);
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    (0..4)
        .map(|_| match miniature::step(&mut trainer, &data) {
            TrainEvent::Step { loss, .. } => loss,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

#[test]
fn same_seed_same_losses_other_seed_other_losses() {
    let (a, b, c) = (losses(1), losses(1), losses(2));
    assert_eq!(a, b, "seed 1 twice");
    assert_ne!(a, c, "seed 1 vs seed 2");
    assert!(a[3] < a[0], "loss falls over four steps: {a:?}");
}

#[test]
fn a_run_restored_from_its_checkpoint_ends_with_identical_weights() {
    use prunelab_engine::model::weights_fingerprint;
    use prunelab_engine::store::{decode_checkpoint, encode_checkpoint};
    let _turn = miniature::device_rng_turn();
    let mut config = miniature::config();
    config.max_batch_frames = 400;
    config.steps = 6;
    assert!(
        config.model.dropout > 0.0,
        "the check needs dropout draws to continue correctly"
    );
    let data = miniature::utterances(11, 8, 150, 0);
    let device = Device::flex();
    let mut straight = Trainer::new(config.clone(), FeatureStats::identity(80), &device);
    for _ in 0..6 {
        miniature::step(&mut straight, &data);
    }
    let mut first = Trainer::new(config, FeatureStats::identity(80), &device);
    for _ in 0..3 {
        miniature::step(&mut first, &data);
    }
    let bytes = encode_checkpoint(&first.state().unwrap());
    drop(first);
    let mut resumed = Trainer::restore(decode_checkpoint(&bytes, "mid-run").unwrap(), &device).unwrap();
    for _ in 0..3 {
        miniature::step(&mut resumed, &data);
    }
    assert_eq!(
        weights_fingerprint(&resumed.inference_model()).unwrap(),
        weights_fingerprint(&straight.inference_model()).unwrap()
    );
}

#[test]
fn a_non_finite_loss_skips_the_step_and_leaves_the_weights_alone() {
    use prunelab_engine::model::weights_fingerprint;
    let _turn = miniature::device_rng_turn();
    let config = miniature::config();
    let mut poisoned = miniature::utterances(3, 4, 150, 0);
    for u in &mut poisoned {
        u.feats.iter_mut().for_each(|x| *x = f32::NAN);
    }
    let good = miniature::utterances(3, 4, 150, 1);
    let good: Vec<_> = good.iter().collect();
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    // One good step first: burn initialises parameters lazily, on first use.
    assert!(matches!(
        miniature::step_on(&mut trainer, &good),
        TrainEvent::Step { .. }
    ));
    let before = weights_fingerprint(&trainer.inference_model()).unwrap();
    let batch: Vec<_> = poisoned.iter().collect();
    assert_eq!(
        miniature::step_on(&mut trainer, &batch),
        TrainEvent::SkippedStep { step: 1 }
    );
    assert_eq!(weights_fingerprint(&trainer.inference_model()).unwrap(), before);
    assert_eq!((trainer.step(), trainer.skipped_steps()), (2, 1));
    // An empty batch (every item unreadable) is skipped the same way.
    assert_eq!(
        miniature::step_on(&mut trainer, &[]),
        TrainEvent::SkippedStep { step: 2 }
    );
    // Good data still trains afterwards.
    assert!(matches!(
        miniature::step_on(&mut trainer, &good),
        TrainEvent::Step { .. }
    ));
    assert_ne!(weights_fingerprint(&trainer.inference_model()).unwrap(), before);
}

#[test]
fn a_rehearsal_of_the_largest_batch_changes_nothing() {
    use prunelab_engine::model::weights_fingerprint;
    let _turn = miniature::device_rng_turn();
    let mut config = miniature::config();
    config.max_batch_frames = 400;
    let data = miniature::utterances(5, 6, 150, 10);
    let device = Device::flex();
    let mut plain = Trainer::new(config.clone(), FeatureStats::identity(80), &device);
    let plain_events: Vec<TrainEvent> = (0..2).map(|_| miniature::step(&mut plain, &data)).collect();
    let mut rehearsed = Trainer::new(config, FeatureStats::identity(80), &device);
    let largest: Vec<_> = data.iter().rev().take(2).collect();
    rehearsed.rehearse(&largest);
    assert_eq!(rehearsed.step(), 0);
    let events: Vec<TrainEvent> = (0..2).map(|_| miniature::step(&mut rehearsed, &data)).collect();
    assert_eq!(events, plain_events);
    assert_eq!(
        weights_fingerprint(&rehearsed.inference_model()).unwrap(),
        weights_fingerprint(&plain.inference_model()).unwrap()
    );
}
