//! The harness that recorded the fingerprints `run_schedule.rs` compared against until session
//! 21 (it now compares a `Run` with bare steps in one process), kept as it ran. It is written
//! against the API before `train::Run` (commit 075edf0) and is not compiled here: cargo builds
//! only the files directly in `tests/`. To record again, copy it into `engine/tests/` of a
//! checkout of 075edf0 and run
//! `cargo test -p prunelab-engine --test fingerprints_before_run -- --nocapture`.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::Method;
use prunelab_engine::model::weights_fingerprint;
use prunelab_engine::prune::{ScoreKind, Selection, magnitude_scores, prune_model};
use prunelab_engine::train::{DistillConfig, TrainConfig, Trainer};

fn config(method: Method, shards: usize) -> TrainConfig {
    let mut config = miniature::config();
    config.seed = 7;
    config.steps = 30;
    config.max_batch_frames = 500;
    config.shards = shards;
    config.prune.method = method;
    if method == Method::Magnitude {
        config.prune.magnitude_budget = Some(0.6);
        config.prune.magnitude_prune_at = 0.5;
    }
    config
}

fn train(config: TrainConfig, teacher: Option<&prunelab_engine::train::TrainerState>) -> Trainer {
    let data = miniature::utterances(21, 10, 120, 15);
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    if let Some(t) = teacher {
        trainer.attach_teacher(t).unwrap();
    }
    while !trainer.is_finished() {
        trainer.train_step(&data);
        let c = trainer.config.clone();
        if let Some(budget) = c.prune.magnitude_budget {
            let cut = (c.prune.magnitude_prune_at * c.steps as f64).round() as usize;
            if c.prune.method == Method::Magnitude && trainer.step() == cut && c.model.block_shapes.is_none() {
                let model = trainer.inference_model();
                let dense = model.num_params();
                let budget = if budget < 1.0 { (budget * dense as f64).round() as usize } else { budget as usize };
                let scores = magnitude_scores(&model, &c.prune.sites);
                let pruned =
                    prune_model(&model, &c.model, &scores, &[], ScoreKind::Magnitude, Selection::Budget(budget)).unwrap();
                trainer.replace_model(&pruned.model).unwrap();
            }
        }
    }
    trainer
}

#[test]
fn record() {
    let _turn = miniature::device_rng_turn();
    let mut out = Vec::new();
    for (name, method, shards) in [
        ("none", Method::None, 1),
        ("adaptive-dropout", Method::AdaptiveDropout, 1),
        ("adaptive-dropout/2 shards", Method::AdaptiveDropout, 2),
        ("l0", Method::L0, 1),
        ("magnitude", Method::Magnitude, 1),
    ] {
        let t = train(config(method, shards), None);
        let gates = t.inference_gates().map(|g| weights_fingerprint(&g).unwrap());
        out.push(format!("{name}: {:016x} gates {gates:016x?}", weights_fingerprint(&t.inference_model()).unwrap()));
        if method == Method::None {
            let teacher = t.state().unwrap();
            let mut c = config(Method::L0, 1);
            c.distill = Some(DistillConfig {
                teacher: "none".into(),
                kl_weight: 1.0,
                layer_weight: 1.0,
            });
            let s = train(c, Some(&teacher));
            let g = s.inference_gates().map(|g| weights_fingerprint(&g).unwrap());
            out.push(format!("l0+distill: {:016x} gates {g:016x?}", weights_fingerprint(&s.inference_model()).unwrap()));
        }
    }
    println!("FINGERPRINTS\n{}", out.join("\n"));
}
