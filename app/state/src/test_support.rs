//! What the session and comparison tests share: a stand-in trained start, stand-in utterances,
//! a wall clock and turns on the device's generator.

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::Device;
use prunelab_engine::data::Utterance;
use prunelab_engine::gates::Method;
use prunelab_engine::infer::Clock;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::{Trainer, TrainerState};

use crate::settings::LabSettings;

/// A dense `tiny` model's state as the trained start (untrained weights serve: what matters is
/// that sessions start from them).
pub fn trained_start() -> TrainerState {
    let dense = LabSettings {
        method: Method::None,
        ..LabSettings::default()
    };
    let config = dense.train_config().unwrap();
    let stats = FeatureStats::identity(config.fbank.num_bins);
    Trainer::new(config, stats, &Device::flex())
        .state()
        .unwrap()
        .weights_only()
}

/// `count` random utterances of 150 frames and 8 letters, drawn from `seed`.
pub fn utterances(count: usize, seed: u64) -> Vec<Utterance> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| Utterance::random(format!("u{i}"), 150, 8, &mut rng))
        .collect()
}

/// Seconds since the clock was started.
pub struct TestClock(std::time::Instant);

impl TestClock {
    pub fn start() -> Self {
        Self(std::time::Instant::now())
    }
}

impl Clock for TestClock {
    fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// The CPU device's random generator (weights, dropout) is one per process: tests that train
/// take turns with it, or parallel tests would draw from each other's sequences.
pub fn device_rng_turn() -> std::sync::MutexGuard<'static, ()> {
    static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}
