//! L0 lands on its target: the multipliers' update (`gates::hard_concrete`) drives the cut L0's
//! own rule makes to the target share of the prunable parameters by the end of a run.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::{ModuleMapper, Param};
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::{GateLayout, Gates, Method};
use prunelab_engine::prune::{CutSource, Selection, prunable_sparsity};
use prunelab_engine::readback::block_on;
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::train::{StepBatch, TrainConfig, TrainEvent, Trainer};

fn l0_config(steps: usize) -> TrainConfig {
    let mut config = miniature::config();
    config.seed = 7;
    config.steps = steps;
    config.max_batch_frames = 500;
    config.eval_every = 0;
    config.prune.method = Method::L0;
    config.optim.warmup_steps = steps / 10;
    config
}

fn layout(config: &TrainConfig) -> GateLayout {
    let m = &config.model;
    GateLayout {
        blocks: m.num_blocks,
        d_model: m.d_model,
        num_heads: m.num_heads,
        d_ff: m.d_ff,
        conv_kernel: m.conv_kernel,
    }
}

/// Every gate logit (and the multipliers, which the cut does not read) redrawn uniformly from
/// `[low, high)`.
struct Redraw {
    rng: SplitMix64,
    low: f64,
    high: f64,
}

impl ModuleMapper for Redraw {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (low, high) = (self.low, self.high);
        let rng = &mut self.rng;
        param.map(|t| {
            let shape = t.shape();
            let values: Vec<f32> = (0..shape.num_elements())
                .map(|_| (low + (high - low) * rng.next_f64()) as f32)
                .collect();
            Tensor::from_data(TensorData::new(values, shape), &t.device())
        })
    }
}

/// The share the device computes for the multipliers equals what the host's cut removes, for
/// gates spread over open, undecided and closed values (whole modules and heads among them).
#[test]
fn the_cut_sparsity_on_the_device_is_the_cut_the_host_makes() {
    let _turn = miniature::device_rng_turn();
    let config = l0_config(10);
    let trainer = Trainer::new(config.clone(), FeatureStats::identity(80), &Device::flex());
    let kind = config.prune.l0.clone();
    let mut seen_module_cut = false;
    for (seed, (low, high)) in [
        (1, (-6.0, 4.0)),
        (2, (-3.0, 1.0)),
        (3, (-8.0, 8.0)),
        (4, (-2.5, -2.0)),
        (5, (2.0, 4.0)),
    ] {
        let gates: Gates = trainer.inference_gates().unwrap().map(&mut Redraw {
            rng: SplitMix64::new(seed),
            low,
            high,
        });
        let device: f32 = kind.cut_sparsity_of(&gates.tensors(), layout(&config)).into_scalar();
        let source = block_on(CutSource::new(
            trainer.inference_model(),
            config.model.clone(),
            Some(&gates),
            &config.prune,
            false,
        ))
        .unwrap();
        let own = source.cut(Selection::Threshold(0.0)).unwrap();
        let host = prunable_sparsity(&config.model, &own.keep);
        assert!(
            (f64::from(device) - host).abs() < 1e-6,
            "seed {seed}: device {device}, host {host}"
        );
        seen_module_cut |= own.keep.iter().any(|b| b.modules.contains(&0.0));
    }
    assert!(seen_module_cut, "the draws should remove a whole module somewhere");
}

/// Trains the miniature L0 model for `steps`; returns the highest expected sparsity a step
/// reported and the share of the prunable parameters its own cut removes at the end.
fn train_l0(steps: usize) -> (f32, f64) {
    let config = l0_config(steps);
    let data = miniature::utterances(21, 10, 120, 15);
    let model_config = config.model.clone();
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    let mut highest = 0.0f32;
    while !trainer.is_finished() {
        if let TrainEvent::Step {
            expected_sparsity: Some(s),
            ..
        } = block_on(trainer.train_step(StepBatch::Planned(&data))).unwrap()
        {
            highest = highest.max(s);
        }
    }
    let source = block_on(trainer.cut_source(false)).unwrap();
    let own = source.cut(Selection::Threshold(0.0)).unwrap();
    (highest, prunable_sparsity(&model_config, &own.keep))
}

/// The lab's run length (600 steps, the target reached halfway). With the multipliers stepped
/// by Adam (before session 39) this model's expected sparsity rose to 0.69 for a target of 0.5
/// and its cut removed about two thirds; seeds 7–11 now land at 0.49–0.51.
#[test]
fn l0s_own_cut_lands_within_three_points_of_its_target() {
    let _turn = miniature::device_rng_turn();
    let (highest, cut) = train_l0(600);
    let target = l0_config(600).prune.l0.target_sparsity;
    assert!(
        (cut - target).abs() <= 0.03,
        "cut removes {cut:.4} of the prunable parameters, target {target}"
    );
    assert!(
        f64::from(highest) < target + 0.05,
        "the expected sparsity overshot to {highest}"
    );
}
