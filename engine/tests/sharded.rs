//! Splitting a batch over threads (`TrainConfig::shards`) stays reproducible: same seed and
//! shard count, same weights, also across a restore. (That the shards' gradients add up to the
//! whole batch's is a unit test in `train/shards.rs`.)

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::Method;
use prunelab_engine::model::weights_fingerprint;
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{decode_checkpoint, encode_checkpoint};
use prunelab_engine::train::{TrainEvent, Trainer};

#[test]
fn sharded_runs_repeat_exactly_and_resume_exactly() {
    let _turn = miniature::device_rng_turn();
    let mut config = miniature::config();
    config.shards = 2;
    config.max_batch_frames = 700;
    config.steps = 6;
    config.prune.method = Method::AdaptiveDropout;
    assert!(config.model.dropout > 0.0, "the check needs dropout draws");
    let data = miniature::utterances(11, 8, 150, 5);
    let device = Device::flex();
    let run = |steps: usize, trainer: &mut Trainer| {
        for _ in 0..steps {
            assert!(matches!(miniature::step(trainer, &data), TrainEvent::Step { .. }));
        }
    };
    let mut a = Trainer::new(config.clone(), FeatureStats::identity(80), &device);
    run(6, &mut a);
    let mut b = Trainer::new(config.clone(), FeatureStats::identity(80), &device);
    run(6, &mut b);
    assert_eq!(
        weights_fingerprint(&a.inference_model()).unwrap(),
        weights_fingerprint(&b.inference_model()).unwrap()
    );

    let mut first = Trainer::new(config, FeatureStats::identity(80), &device);
    run(3, &mut first);
    let bytes = encode_checkpoint(&first.state().unwrap());
    drop(first);
    let mut resumed = Trainer::restore(decode_checkpoint(&bytes, "mid-run").unwrap(), &device).unwrap();
    run(3, &mut resumed);
    assert_eq!(
        weights_fingerprint(&resumed.inference_model()).unwrap(),
        weights_fingerprint(&a.inference_model()).unwrap()
    );
    let retention = |t: &Trainer| block_on(t.cut_source(false)).unwrap().retention;
    assert_eq!(retention(&a), retention(&resumed), "the gates resume exactly too");
}
