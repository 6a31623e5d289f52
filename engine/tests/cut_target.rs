//! Cutting to a typed target (`CutSource::selection_for`): a share of the parameters, a count,
//! or a speed-up in FLOPs; the largest model that fits, for weight norms and for L0's gates.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::{GateConfig, Method};
use prunelab_engine::prune::{CutSource, CutTarget, PlanError, Selection};
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{decode_checkpoint, encode_checkpoint};
use prunelab_engine::train::Trainer;

/// A miniature model scored by weight norms, or by fresh gates of `method`.
fn source(method: Method) -> CutSource {
    let mut config = miniature::config();
    config.prune.method = method;
    let trainer = Trainer::new(config.clone(), FeatureStats::identity(80), &Device::flex());
    let gates = trainer.inference_gates();
    let prune = GateConfig { method, ..config.prune };
    block_on(CutSource::new(
        trainer.inference_model(),
        config.model,
        gates.as_ref(),
        &prune,
        false,
    ))
    .unwrap()
}

#[test]
fn half_the_parameters_gives_a_cut_within_two_percent_of_half() {
    for method in [Method::Magnitude, Method::L0] {
        let source = source(method);
        let dense = source.model.num_params();
        let selection = source.selection_for(CutTarget::Share(0.5)).unwrap();
        let params = source.cut(selection).unwrap().params.total();
        let off = (params as f64 - dense as f64 / 2.0).abs() / (dense as f64 / 2.0);
        assert!(
            params <= dense / 2 + 1 && off < 0.02,
            "{method:?}: {params} of {dense} ({off:.3} off)"
        );

        let counted = source.selection_for(CutTarget::Parameters(dense / 3)).unwrap();
        assert!(source.cut(counted).unwrap().params.total() <= dense / 3, "{method:?}");
    }
}

#[test]
fn a_speedup_is_the_largest_model_with_that_many_times_fewer_flops() {
    let source = source(Method::Magnitude);
    let dense = source.cut(Selection::Threshold(0.0)).unwrap();
    let selection = source.selection_for(CutTarget::Speedup(2.0)).unwrap();
    let Selection::Budget(budget) = selection else {
        panic!("a speed-up becomes a parameter budget, got {selection:?}")
    };
    let cut = source.cut(selection).unwrap();
    assert!(cut.flops_per_second <= dense.flops_per_second / 2.0);
    // The largest such model: a few more parameters (one FFN unit of the miniature holds 65)
    // would break the target.
    let bigger = source.cut(Selection::Budget(budget + 200)).unwrap();
    assert!(
        bigger.flops_per_second > dense.flops_per_second / 2.0,
        "{} parameters fit the target too",
        budget + 200
    );
    assert!(matches!(
        source.selection_for(CutTarget::Speedup(1000.0)),
        Err(PlanError::TargetUnreachable { .. })
    ));
}

#[test]
fn a_budget_counts_the_modules_l0_removes_so_the_cut_fills_it() {
    let mut source = source(Method::L0);
    // The last block's second feed-forward module closed by its gate: its units hold no
    // parameters, so the budget must go to units elsewhere rather than be undershot by the
    // module's size. (Fresh gates tie, and ties go in block and site order, so without the
    // closed module these units would be the last to go.)
    let last = source.modules.len() - 1;
    source.modules[last][3] = 0.0;
    let dense = source.model.num_params();
    let params = source
        .cut(source.selection_for(CutTarget::Share(0.5)).unwrap())
        .unwrap()
        .params
        .total();
    let off = (params as f64 - dense as f64 / 2.0).abs() / (dense as f64 / 2.0);
    assert!(
        params <= dense / 2 + 1 && off < 0.02,
        "{params} of {dense} ({off:.3} off)"
    );
}

/// A model cut earlier (as the magnitude method cuts its model during training) is cut again
/// within that cut's plan: shares stay shares of the dense model, a share it already meets
/// keeps it as it is, no unit the earlier cut removed comes back, and the smaller model's
/// surgery gives what the same plan gives applied to the dense model (the same weights: no
/// training between the cuts here).
#[test]
fn a_model_cut_earlier_is_cut_again_within_its_plan_as_the_dense_model_would_be() {
    let dense = source(Method::Magnitude);
    let earlier = dense.cut(dense.selection_for(CutTarget::Share(0.6)).unwrap()).unwrap();
    let config = miniature::config();
    let mut smaller = config.model.clone();
    smaller.block_shapes = Some(earlier.model.block_shapes());
    let again = block_on(CutSource::new(
        earlier.model.clone(),
        smaller,
        None,
        &config.prune,
        false,
    ))
    .unwrap()
    .within_earlier_cut(earlier.keep.clone());
    assert!(again.already_cut() && again.can_plan());
    assert_eq!(again.dense_params(), dense.dense_params());

    let same = again.cut(again.selection_for(CutTarget::Share(0.7)).unwrap()).unwrap();
    assert_eq!((same.params, &same.keep), (earlier.params, &earlier.keep));

    let recut = again.cut(again.selection_for(CutTarget::Share(0.3)).unwrap()).unwrap();
    let total = dense.dense_params() as f64;
    assert!(
        recut.params.total() as f64 <= 0.3 * total && recut.params.total() as f64 > 0.27 * total,
        "{} of {total}",
        recut.params.total()
    );
    let kept = |keep: &[prunelab_engine::model::BlockKeep]| -> Vec<(usize, usize, usize)> {
        keep.iter()
            .enumerate()
            .flat_map(|(b, k)| {
                let heads = k.query.iter().chain(&k.value).enumerate();
                let heads = heads.flat_map(move |(h, units)| units.index.iter().map(move |&i| (b, 10 + h, i)));
                [&k.ffn1, &k.conv, &k.ffn2]
                    .into_iter()
                    .enumerate()
                    .flat_map(move |(s, units)| units.index.iter().map(move |&i| (b, s, i)))
                    .chain(heads)
            })
            .collect()
    };
    let before = kept(&earlier.keep);
    assert!(
        kept(&recut.keep).iter().all(|unit| before.contains(unit)),
        "a removed unit came back"
    );

    // The same plan applied to the dense model. The surgery folds a removed convolution
    // channel's constant output into the next bias: in two cuts those sums are added in another
    // order, so the weights agree to rounding (1e-8 measured), not bit for bit.
    let direct = dense.model.pruned(&recut.keep);
    assert_eq!(recut.model.block_shapes(), direct.block_shapes());
    let feats = Tensor::<3>::random(
        [2, 160, 80],
        prunelab_engine::burn::tensor::Distribution::Normal(0.0, 1.0),
        &Device::flex(),
    );
    let logits = |model: &prunelab_engine::model::Conformer| -> Vec<f32> {
        model
            .forward(feats.clone(), &[160, 110])
            .logits
            .try_into_vec_as()
            .unwrap()
    };
    let worst = logits(&recut.model)
        .iter()
        .zip(logits(&direct))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= 1e-5, "recut and direct cut differ by {worst}");
}

/// The magnitude method's cut plan travels with its run: read back from a checkpoint of a run
/// it cut and restored (as the CLI resumes a run and the lab carries on a kept one), the run
/// cuts again within the plan exactly as the run it was written from. A plan that disagrees
/// with the model's shapes is refused, naming the file.
#[test]
fn a_resumed_magnitude_run_cuts_again_within_its_plan() {
    let _turn = miniature::device_rng_turn();
    let mut config = miniature::config();
    config.prune.method = Method::Magnitude;
    let mut trainer = Trainer::new(config, FeatureStats::identity(80), &Device::flex());
    let dense = block_on(trainer.cut_source(false)).unwrap();
    let earlier = dense.cut(dense.selection_for(CutTarget::Share(0.6)).unwrap()).unwrap();
    block_on(trainer.replace_model(&earlier)).unwrap();

    let bytes = encode_checkpoint(&trainer.state().unwrap());
    let resumed = Trainer::restore(decode_checkpoint(&bytes, "cut.plc").unwrap(), &Device::flex()).unwrap();
    let (live, again) = (
        block_on(trainer.cut_source(false)).unwrap(),
        block_on(resumed.cut_source(false)).unwrap(),
    );
    assert!(again.already_cut() && again.can_plan(), "the resumed run lost its plan");
    let cut = |source: &CutSource| {
        source
            .cut(source.selection_for(CutTarget::Share(0.4)).unwrap())
            .unwrap()
    };
    let (from_live, from_resumed) = (cut(&live), cut(&again));
    assert_eq!(from_resumed.keep, from_live.keep);
    assert_eq!(from_resumed.params.total(), from_live.params.total());

    let mut odd = trainer.state().unwrap();
    let first = &mut odd.earlier_cut.as_mut().unwrap()[0].ffn1;
    first.index.pop();
    first.scale.pop();
    let refused = decode_checkpoint(&encode_checkpoint(&odd), "odd.plc")
        .err()
        .unwrap()
        .to_string();
    assert!(refused.contains("odd.plc") && refused.contains("cut plan"), "{refused}");
}
