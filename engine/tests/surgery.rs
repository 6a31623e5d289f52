//! Surgery is exact: the physically pruned model's logits equal the gated model's deterministic
//! inference logits (max |difference| ≤ 1e-4) for every site kind, for uneven and empty heads,
//! for sites pruned to nothing, and for whole-module masks; on the CPU backend and on wgpu.
//! The pruned model's parameter count equals the closed-form count of its plan.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::burn::tensor::Distribution;
use prunelab_engine::gates::{PerSite, SiteKind};
use prunelab_engine::kernels::UnitGate;
use prunelab_engine::model::{BlockKeep, BlockMasks, Conformer};
use prunelab_engine::prune::{ScoreKind, UnitScores, flops_per_second, plan_threshold, planned_params, planned_shapes};
use prunelab_engine::rng::SplitMix64;
use prunelab_engine::store::load_inference_model;
use prunelab_engine::train::Trainer;

const THRESHOLD: f64 = 0.5;

/// The miniature model after a few training steps (so BatchNorm's running statistics are not
/// the identity), on `device`, in inference mode.
fn trained_model(device: &Device) -> Conformer {
    let mut config = miniature::config();
    config.model.dropout = 0.0;
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    let data = miniature::utterances(1, 6, 120, 20);
    for _ in 0..3 {
        miniature::step(&mut trainer, &data);
    }
    load_inference_model(&trainer.state().unwrap(), None, device, "trained").unwrap()
}

/// Random retention scores in [0, 1) at `sites`.
fn random_scores(model: &Conformer, sites: &[SiteKind], seed: u64) -> UnitScores {
    let mut rng = SplitMix64::new(seed);
    let (d, ff) = (32, 64);
    (0..model.blocks.len())
        .map(|_| {
            std::array::from_fn(|s| {
                let kind = SiteKind::ALL[s];
                let units = if matches!(kind, SiteKind::Ffn1Hidden | SiteKind::Ffn2Hidden) {
                    ff
                } else {
                    d
                };
                sites
                    .contains(&kind)
                    .then(|| (0..units).map(|_| rng.next_f64() as f32).collect())
            })
        })
        .collect()
}

/// The gated model's inference masks: retention where it reaches the threshold, else 0.
fn masks_of(scores: &UnitScores, modules: &[[f32; 4]], device: &Device) -> Vec<BlockMasks> {
    scores
        .iter()
        .zip(modules)
        .map(|(sites, z): (&PerSite<Vec<f32>>, _)| {
            let mask = |s: usize| {
                sites[s].as_ref().map(|p| {
                    let values: Vec<f32> = p
                        .iter()
                        .map(|&x| if f64::from(x) >= THRESHOLD { x } else { 0.0 })
                        .collect();
                    let u = values.len();
                    UnitGate::from(Tensor::<1>::from_data(TensorData::new(values, [u]), device).reshape([1, 1, u]))
                })
            };
            BlockMasks {
                ffn1: mask(0),
                query: mask(1),
                value: mask(2),
                conv: mask(3),
                ffn2: mask(4),
                modules: z.map(|z| (z != 1.0).then(|| Tensor::<3>::full([1, 1, 1], z, device))),
                ffn_masks_are_dropout: false,
            }
        })
        .collect()
}

fn logits(model: &Conformer, masks: &[BlockMasks], feats: &Tensor<3>) -> Vec<f32> {
    model
        .forward_gated(feats.clone(), &[160, 110], masks)
        .logits
        .try_into_vec_as()
        .unwrap()
}

/// Prunes per `scores` (and module gates `modules`) and returns max |gated − pruned|.
fn surgery_error(model: &Conformer, scores: &UnitScores, modules: &[[f32; 4]], device: &Device) -> f32 {
    let feats = Tensor::<3>::random([2, 160, 80], Distribution::Normal(0.0, 1.0), device);
    let gated = logits(model, &masks_of(scores, modules, device), &feats);
    let mut plan: Vec<BlockKeep> =
        plan_threshold(&miniature::config().model, scores, ScoreKind::Retention, THRESHOLD).unwrap();
    for (keep, z) in plan.iter_mut().zip(modules) {
        keep.modules = *z;
    }
    let pruned = model.pruned(&plan);
    let config = miniature::config().model;
    assert_eq!(
        pruned.num_params(),
        planned_params(&config, &plan).total(),
        "closed-form count"
    );
    assert_eq!(pruned.block_shapes(), planned_shapes(&plan));
    let smaller = logits(&pruned, &[], &feats);
    gated
        .iter()
        .zip(&smaller)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

fn dense_modules(model: &Conformer) -> Vec<[f32; 4]> {
    vec![[1.0; 4]; model.blocks.len()]
}

fn check_every_case(device: &Device) {
    let model = trained_model(device);
    let dense = dense_modules(&model);
    for (i, kind) in SiteKind::ALL.into_iter().enumerate() {
        let scores = random_scores(&model, &[kind], 10 + i as u64);
        let error = surgery_error(&model, &scores, &dense, device);
        println!("{}: max |gated - pruned| = {error:.2e}", kind.name());
        assert!(error <= 1e-4, "{}: {error}", kind.name());
    }

    // Every site at once, with uneven heads: block 0 loses all of head 0's values (the head goes)
    // and all of head 1's queries (it attends by position alone).
    let mut scores = random_scores(&model, &SiteKind::ALL, 20);
    let head = 32 / 4;
    let block0 = &mut scores[0];
    block0[SiteKind::AttnValue.index()].as_mut().unwrap()[..head].fill(0.1);
    block0[SiteKind::AttnQuery.index()].as_mut().unwrap()[head..2 * head].fill(0.1);
    let error = surgery_error(&model, &scores, &dense, device);
    println!("all sites, uneven heads: {error:.2e}");
    assert!(error <= 1e-4, "all sites: {error}");

    // Sites pruned to nothing: the modules disappear and their output bias stays behind.
    let mut scores = random_scores(&model, &SiteKind::ALL, 30);
    for kind in [SiteKind::Ffn1Hidden, SiteKind::AttnValue, SiteKind::ConvInput] {
        scores[1][kind.index()].as_mut().unwrap().fill(0.0);
    }
    // Block 0 keeps its values but no query dimension at all: attention by position alone.
    scores[0][SiteKind::AttnQuery.index()].as_mut().unwrap().fill(0.0);
    let error = surgery_error(&model, &scores, &dense, device);
    println!("emptied sites: {error:.2e}");
    assert!(error <= 1e-4, "emptied sites: {error}");

    // Whole-module gates (the L0 method's coarse masks): 0 removes, a fraction folds in.
    let scores = random_scores(&model, &SiteKind::ALL, 40);
    let modules = vec![[0.0, 0.6, 1.0, 0.3], [1.0, 0.0, 0.0, 0.8]];
    let error = surgery_error(&model, &scores, &modules, device);
    println!("module masks: {error:.2e}");
    assert!(error <= 1e-4, "module masks: {error}");
}

#[test]
fn pruned_model_matches_gated_model_on_cpu() {
    check_every_case(&Device::flex());
}

#[cfg(feature = "wgpu")]
#[test]
fn pruned_model_matches_gated_model_on_wgpu() {
    let device = Device::wgpu_options().init().unwrap_or_else(|e| {
        panic!("no wgpu adapter ({e:?}); install mesa-vulkan-drivers and set VK_ICD_FILENAMES to lavapipe's ICD")
    });
    check_every_case(&device);
}

#[test]
fn pruning_half_the_units_cuts_parameters_and_flops() {
    let device = Device::flex();
    let model = trained_model(&device);
    let config = miniature::config().model;
    let scores = random_scores(&model, &SiteKind::ALL, 50);
    let plan = plan_threshold(&config, &scores, ScoreKind::Retention, THRESHOLD).unwrap();
    let everything = plan_threshold(&config, &scores, ScoreKind::Retention, 0.0).unwrap();
    let (pruned, dense) = (planned_params(&config, &plan), planned_params(&config, &everything));
    assert_eq!(dense.total(), model.num_params());
    assert!(pruned.blocks < dense.blocks * 6 / 10, "{pruned:?} vs {dense:?}");
    assert_eq!(pruned.subsampling, dense.subsampling);
    let (f_pruned, f_dense) = (
        flops_per_second(&config, &planned_shapes(&plan)),
        flops_per_second(&config, &planned_shapes(&everything)),
    );
    assert!(f_pruned < f_dense, "{f_pruned} vs {f_dense}");
}

#[test]
fn out_of_range_thresholds_and_budgets_are_clear_errors() {
    use prunelab_engine::prune::{PlanError, plan_budget};
    let device = Device::flex();
    let model = trained_model(&device);
    let config = miniature::config().model;
    let scores = random_scores(&model, &SiteKind::ALL, 60);
    let count = |plan: &[BlockKeep]| planned_params(&config, plan).total();
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = plan_threshold(&config, &scores, ScoreKind::Retention, bad).unwrap_err();
        assert!(matches!(err, PlanError::ThresholdOutOfRange(_)), "{err}");
    }
    let dense = model.num_params();
    let too_big = plan_budget(&config, &scores, &scores, None, ScoreKind::Retention, dense + 1, count).unwrap_err();
    assert_eq!(
        too_big.to_string(),
        format!(
            "budget of {} parameters is not below the model's {dense} (nothing to prune)",
            dense + 1
        )
    );
    let too_small = plan_budget(&config, &scores, &scores, None, ScoreKind::Retention, 10, count).unwrap_err();
    assert!(matches!(too_small, PlanError::BudgetTooSmall { .. }), "{too_small}");
    // A feasible budget is met, and by the units with the lowest scores.
    let plan = plan_budget(
        &config,
        &scores,
        &scores,
        None,
        ScoreKind::Retention,
        dense * 6 / 10,
        count,
    )
    .unwrap();
    assert!(count(&plan) <= dense * 6 / 10);
    let kept_min = plan[0].ffn1.scale.iter().copied().fold(f32::INFINITY, f32::min);
    let ffn1 = scores[0][SiteKind::Ffn1Hidden.index()].as_ref().unwrap();
    let dropped_max = (0..ffn1.len())
        .filter(|i| !plan[0].ffn1.index.contains(i))
        .map(|i| ffn1[i])
        .fold(f32::NEG_INFINITY, f32::max);
    assert!(dropped_max <= kept_min, "dropped {dropped_max} > kept {kept_min}");
}
