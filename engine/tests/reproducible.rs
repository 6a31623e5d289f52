//! Training is seeded: the same seed gives the same losses on the CPU backend, another seed
//! does not.

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::data::Utterance;
use prunelab_engine::model::{ConformerConfig, Preset};
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::{TrainConfig, TrainEvent, Trainer};

fn losses(seed: u64) -> Vec<f32> {
    let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
    config.model = ConformerConfig {
        d_model: 32,
        num_blocks: 2,
        d_ff: 64,
        subsampling_channels: 8,
        ..config.model
    };
    config.seed = seed;
    config.max_batch_frames = 400;
    config.optim.warmup_steps = 1;
    let mut rng = SplitMix64::new(11);
    let data: Vec<Utterance> = (0..8)
        .map(|i| Utterance {
            id: format!("u{i}"),
            text: String::new(),
            tokens: (0..6).map(|_| 3 + rng.below(26)).collect(),
            feats: (0..150 * 80).map(|_| rng.next_f64() as f32).collect(),
            frames: 150,
            duration_seconds: 1.5,
        })
        .collect();
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
