//! The asynchronous read-back paths the browser uses (a synchronous read panics on WebGPU)
//! compute exactly what the synchronous ones compute: training steps, gate snapshots,
//! magnitude scores and evaluation. Run on the CPU backend, where both kinds of read exist.

mod miniature;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::decode::Decoder;
use prunelab_engine::gates::Method;
use prunelab_engine::prune::{magnitude_scores, magnitude_scores_async};
use prunelab_engine::train::{TrainEvent, Trainer, evaluate_decoders, evaluate_decoders_async};

/// Runs a future whose reads complete at once (the CPU backend's do) to its end.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a CPU-backend read did not complete at once"),
    }
}

fn trainer(method: Method) -> Trainer {
    let mut config = miniature::config();
    config.prune.method = method;
    config.prune.adaptive_dropout.initial_logit = 0.0;
    Trainer::new(config, FeatureStats::identity(80), &Device::flex())
}

#[test]
fn async_training_steps_equal_sync_ones() {
    let _turn = miniature::device_rng_turn();
    let data = miniature::utterances(3, 6, 120, 20);
    let logits = |t: &Trainer| -> Vec<f32> {
        let feats = Tensor::<3>::ones([1, 100, 80], &Device::flex());
        t.inference_model()
            .forward(feats, &[100])
            .logits
            .try_into_vec_as()
            .unwrap()
    };
    for method in [Method::None, Method::AdaptiveDropout, Method::L0] {
        // One run after the other: `Trainer::new` reseeds the device, whose generator also
        // draws the dropout masks, so interleaving two runs would give them different masks.
        let mut sync = trainer(method);
        let sync_events: Vec<TrainEvent> = (0..3).map(|_| sync.train_step(&data)).collect();
        let sync_logits = logits(&sync);
        let mut not_sync = trainer(method);
        let events: Vec<TrainEvent> = (0..3)
            .map(|_| ready(not_sync.train_step_async(&data)).unwrap())
            .collect();
        assert!(
            matches!(sync_events[0], TrainEvent::Step { .. }),
            "{:?}",
            sync_events[0]
        );
        assert_eq!(sync_events, events, "{}", method.name());
        assert_eq!(
            sync_logits,
            logits(&not_sync),
            "{}: weights differ after the same steps",
            method.name()
        );
    }
}

#[test]
fn async_gate_snapshot_and_scores_equal_sync_ones() {
    let _turn = miniature::device_rng_turn();
    let data = miniature::utterances(5, 6, 120, 20);
    for method in [Method::AdaptiveDropout, Method::L0] {
        let mut t = trainer(method);
        t.train_step(&data);
        let gates = t.inference_gates().expect("gated");
        let snapshot = ready(gates.snapshot_async()).unwrap();
        assert_eq!(snapshot, gates.snapshot());
        let config = &t.config.prune;
        assert_eq!(snapshot.pruning_scores(config), gates.pruning_scores(config));
        let retention = snapshot.retention(config);
        let all: Vec<f32> = retention.iter().flatten().flatten().flatten().copied().collect();
        assert!(
            !all.is_empty() && all.iter().all(|p| (0.0..=1.0).contains(p)),
            "{}",
            method.name()
        );
    }
}

#[test]
fn async_magnitude_scores_and_evaluation_equal_sync_ones() {
    let _turn = miniature::device_rng_turn();
    let data = miniature::utterances(7, 5, 120, 30);
    let mut t = trainer(Method::None);
    t.train_step(&data);
    let model = t.inference_model();
    let sites = &t.config.prune.sites;
    assert_eq!(
        ready(magnitude_scores_async(&model, sites)).unwrap(),
        magnitude_scores(&model, sites)
    );
    let stats = FeatureStats::identity(80);
    let greedy = Decoder::Greedy;
    let a = evaluate_decoders(&model, &[], &data, &stats, 400, &[&greedy]);
    let b = ready(evaluate_decoders_async(&model, &[], &data, &stats, 400, &[&greedy])).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[0].utterances.len(), data.len());
}
