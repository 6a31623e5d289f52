//! Pruning: scores → keep-plan → a physically smaller Conformer, and what it costs.
//!
//! The surgery itself lives with the layers (`Conformer::pruned`), which know their own weight
//! layout; this module decides what to keep and accounts for the result.

mod cost;
mod cut;
mod knob;
mod magnitude;
mod plan;
mod recut;
mod target;

pub use cost::{FLOPS_REFERENCE_SECONDS, ParamCount, block_params, flops_per_second, param_count};
pub use cut::CutSource;
pub use knob::{Knob, KnobMeaning, kept_budget};
pub use magnitude::magnitude_scores;
pub use plan::{
    PlanError, ScoreKind, UnitScores, kept_map, kept_per_site, plan_budget, plan_threshold, prunable_sparsity,
    removed_params_per_site,
};
pub use target::{CutTarget, TargetError};

use serde::{Deserialize, Serialize};

use crate::model::{BlockKeep, BlockShape, Conformer, ConformerConfig, check_keep_plan};

/// How the kept units are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Units whose score reaches this threshold.
    Threshold(f64),
    /// The highest-scoring units that fit this many parameters.
    Budget(usize),
}

/// A physically pruned model and what it cost.
#[derive(Debug)]
pub struct Pruned {
    pub model: Conformer,
    pub keep: Vec<BlockKeep>,
    pub params: ParamCount,
    pub flops_per_second: f64,
}

/// The keep-plan `selection` makes from `scores` (ranked by `rank` for a budget, equal ranks
/// ordered by `tie_break`) for the dense model of `config`. `module_gates` are whole-module
/// gate values per block (L0; empty: every module kept whole).
fn plan(
    config: &ConformerConfig,
    scores: &UnitScores,
    rank: &UnitScores,
    tie_break: Option<&UnitScores>,
    module_gates: &[[f32; 4]],
    kind: ScoreKind,
    selection: Selection,
) -> Result<Vec<BlockKeep>, PlanError> {
    let with_modules = |mut keep: Vec<BlockKeep>| {
        for (block, gates) in keep.iter_mut().zip(module_gates) {
            block.modules = *gates;
        }
        keep
    };
    Ok(with_modules(match selection {
        Selection::Threshold(t) => plan_threshold(config, scores, kind, t)?,
        // Counted as the model will be: a module its gate removes holds no parameters, so the
        // budget goes to units that remain (counting them filled budgets far below the target).
        Selection::Budget(b) => plan_budget(config, scores, rank, tie_break, kind, b, |plan| {
            planned_params(config, &with_modules(plan.to_vec())).total()
        })?,
    }))
}

/// Cuts `model` (of `config`) down to `keep`, and accounts for the result.
fn cut_to(model: &Conformer, config: &ConformerConfig, keep: Vec<BlockKeep>) -> Pruned {
    let shapes = planned_shapes(&keep);
    Pruned {
        model: model.pruned(&keep),
        params: param_count(config, &shapes),
        flops_per_second: flops_per_second(config, &shapes),
        keep,
    }
}

/// The block shapes a plan produces from the dense model.
pub fn planned_shapes(plan: &[BlockKeep]) -> Vec<BlockShape> {
    plan.iter()
        .map(|keep| {
            let gone = |z: f32| z == 0.0;
            let live: Vec<usize> = (0..keep.value.len()).filter(|&h| !keep.value[h].is_empty()).collect();
            let attention_gone = gone(keep.modules[1]) || live.is_empty();
            BlockShape {
                ffn1_hidden: if gone(keep.modules[0]) { 0 } else { keep.ffn1.len() },
                query_widths: if attention_gone {
                    vec![]
                } else {
                    live.iter().map(|&h| keep.query[h].len()).collect()
                },
                value_widths: if attention_gone {
                    vec![]
                } else {
                    live.iter().map(|&h| keep.value[h].len()).collect()
                },
                conv_channels: if gone(keep.modules[2]) { 0 } else { keep.conv.len() },
                ffn2_hidden: if gone(keep.modules[3]) { 0 } else { keep.ffn2.len() },
            }
        })
        .collect()
}

/// Checks a cut's plan read from a file (an export's manifest, a checkpoint's cut plan) against
/// the cut model's config `cut`: the plan selects from the dense model (every index inside its
/// layer, see [`check_keep_plan`]) and makes `cut`'s own block shapes. Surgery and later cuts
/// index the dense layout by it, so a plan that fails here must never be used.
pub fn check_cut_plan(cut: &ConformerConfig, plan: &[BlockKeep]) -> Result<(), String> {
    let Some(shapes) = &cut.block_shapes else {
        return Err("its config has no block shapes (the model was never cut)".into());
    };
    check_keep_plan(&cut.clone().with_block_shapes(None), plan).map_err(|e| e.to_string())?;
    if planned_shapes(plan) != *shapes {
        return Err("its kept units and its block shapes disagree".into());
    }
    Ok(())
}

/// Exact parameter count of the model `plan` makes from the dense model of `config`.
pub fn planned_params(config: &ConformerConfig, plan: &[BlockKeep]) -> ParamCount {
    param_count(config, &planned_shapes(plan))
}
