//! Training is seeded: the same seed gives the same losses on the CPU backend, another seed
//! does not.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::train::{TrainEvent, Trainer};

fn losses(seed: u64) -> Vec<f32> {
    let mut config = miniature::config();
    config.seed = seed;
    config.max_batch_frames = 400;
    let data = miniature::utterances(11, 8, 150, 0);
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    (0..4)
        .map(|_| match trainer.train_step(&data) {
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
