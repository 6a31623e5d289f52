//! Cutting to a typed target (`CutSource::selection_for`): a share of the parameters, a count,
//! or a speed-up in FLOPs; the largest model that fits, for weight norms and for L0's gates.

mod miniature;

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::burn::module::Module;
use prunelab_engine::burn::prelude::*;
use prunelab_engine::gates::{GateConfig, Method};
use prunelab_engine::prune::{CutSource, CutTarget, PlanError, Selection};
use prunelab_engine::readback::block_on;
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
