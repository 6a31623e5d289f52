//! A miniature Conformer config and synthetic utterances, shared by the integration tests that
//! train: small enough for lavapipe and a debug build, big enough to exercise every layer.

use prunelab_engine::data::Utterance;
use prunelab_engine::model::{ConformerConfig, Preset};
use prunelab_engine::readback::block_on;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::{StepBatch, TrainConfig, TrainEvent, Trainer};

/// The tiny preset narrowed to two blocks of width 32; one warm-up step so a few steps learn.
pub fn config() -> TrainConfig {
    let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
    config.model = ConformerConfig {
        d_model: 32,
        num_blocks: 2,
        d_ff: 64,
        subsampling_channels: 8,
        ..config.model
    };
    config.optim.warmup_steps = 1;
    config
}

/// `count` utterances of random features (uniform in [-1, 1)) and 6–8 random tokens each;
/// the `i`-th has `first_frames + i · frame_step` frames.
pub fn utterances(seed: u64, count: usize, first_frames: usize, frame_step: usize) -> Vec<Utterance> {
    let mut rng = SplitMix64::new(seed);
    (0..count)
        .map(|i| {
            let frames = first_frames + i * frame_step;
            let tokens = 6 + rng.below(3);
            Utterance::random(format!("u{i}"), frames, tokens, &mut rng)
        })
        .collect()
}

/// The CPU device's random generator (weights, dropout) is one per process: tests that train
/// take turns with it, or parallel tests would draw from each other's sequences.
#[allow(dead_code)] // not every test binary that includes this module trains
pub fn device_rng_turn() -> std::sync::MutexGuard<'static, ()> {
    static DEVICE_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());
    DEVICE_RNG.lock().unwrap_or_else(|e| e.into_inner())
}

/// One training step on a batch the trainer plans from `data` (native: blocks on the step).
#[allow(dead_code)]
pub fn step(trainer: &mut Trainer, data: &[Utterance]) -> TrainEvent {
    block_on(trainer.train_step(StepBatch::Planned(data))).expect("a CPU training step")
}

/// One training step on exactly `batch`.
#[allow(dead_code)]
pub fn step_on(trainer: &mut Trainer, batch: &[&Utterance]) -> TrainEvent {
    block_on(trainer.train_step(StepBatch::Given(batch))).expect("a CPU training step")
}

/// The process's one wgpu device (burn sets its runtime up once: a second `init` fails). On
/// machines without a GPU it is Mesa's lavapipe.
#[cfg(feature = "wgpu")]
#[allow(dead_code)] // not every test binary that includes this module runs on wgpu
pub fn wgpu_device() -> prunelab_engine::burn::prelude::Device {
    static DEVICE: std::sync::OnceLock<prunelab_engine::burn::prelude::Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            prunelab_engine::burn::prelude::Device::wgpu_options()
                .init()
                .unwrap_or_else(|e| {
                    panic!(
                        "no wgpu adapter ({e:?}); install mesa-vulkan-drivers and set VK_ICD_FILENAMES to lavapipe's ICD"
                    )
                })
        })
        .clone()
}
