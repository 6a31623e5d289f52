//! From unit scores to a keep-plan: which units of every site survive, and the scale each
//! carries into the smaller model.

use serde::{Deserialize, Serialize};

use crate::gates::{PerSite, SiteKind, params_per_unit};
use crate::model::{BlockKeep, ConformerConfig, KeptUnits};

/// Per block and site, one score per unit (`None`: the site is not gated and stays whole).
pub type UnitScores = Vec<PerSite<Vec<f32>>>;

/// Whether a kept unit's score is also its inference scale (learned retention) or not (norms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScoreKind {
    /// Retention probabilities: kept units carry their probability into the weights.
    Retention,
    /// Weight norms: kept units are copied unscaled.
    Magnitude,
}

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("threshold {0} is outside [0, 1]")]
    ThresholdOutOfRange(f64),
    #[error("budget of {budget} parameters is not below the model's {dense} (nothing to prune)")]
    BudgetTooLarge { budget: usize, dense: usize },
    #[error("budget of {budget} parameters is below {floor}, what the model keeps with every gated unit removed")]
    BudgetTooSmall { budget: usize, floor: usize },
    #[error("scores cover {found} blocks, the model has {expected}")]
    WrongBlocks { found: usize, expected: usize },
    #[error("the model was already cut (by the magnitude method during training) and is not cut again")]
    AlreadyCut,
    #[error("no cut reaches {target}, even with every gated unit removed")]
    TargetUnreachable { target: String },
}

/// Keeps every unit whose score is at least `threshold`.
pub fn plan_threshold(
    config: &ConformerConfig,
    scores: &UnitScores,
    kind: ScoreKind,
    threshold: f64,
) -> Result<Vec<BlockKeep>, PlanError> {
    if !(0.0..=1.0).contains(&threshold) {
        return Err(PlanError::ThresholdOutOfRange(threshold));
    }
    check_blocks(config, scores)?;
    let keep = |s: &[f32]| -> Vec<bool> { s.iter().map(|&x| f64::from(x) >= threshold).collect() };
    Ok(scores
        .iter()
        .map(|sites| block_keep(config, sites, kind, |_, s| keep(s)))
        .collect())
}

/// Removes the lowest-ranked units, across every site and block, until the model has at most
/// `budget` parameters. `rank` orders the units (often `scores` itself; L0 ranks by how likely
/// a gate is to be open); `scores` give a kept unit its scale. `count_params` gives the exact
/// count of a plan (see `prune::cost`).
///
/// Magnitude scores are not comparable across site kinds (a query norm is not an FFN norm), so
/// each site's scores are divided by their mean before ranking; retention scores are ranked as
/// they are. Units that rank equal are ordered by `tie_break` (weight norms, divided by their
/// site's mean the same way) where given, and by position otherwise: gates that have not
/// learned yet all rank equal, and a cut by position would remove whole blocks' units.
pub fn plan_budget(
    config: &ConformerConfig,
    scores: &UnitScores,
    rank: &UnitScores,
    tie_break: Option<&UnitScores>,
    kind: ScoreKind,
    budget: usize,
    count_params: impl Fn(&[BlockKeep]) -> usize,
) -> Result<Vec<BlockKeep>, PlanError> {
    check_blocks(config, scores)?;
    check_blocks(config, rank)?;
    if let Some(tie_break) = tie_break {
        check_blocks(config, tie_break)?;
    }
    let dense = count_params(&plan_removing(config, scores, kind, &[], 0));
    if budget >= dense {
        return Err(PlanError::BudgetTooLarge { budget, dense });
    }
    // Every gated unit as (rank score, tie-break, block, site, unit).
    let per_site_mean =
        |values: &[f32]| (values.iter().sum::<f32>() / values.len().max(1) as f32).max(f32::MIN_POSITIVE);
    let mut units: Vec<(f32, f32, usize, usize, usize)> = Vec::new();
    for (b, sites) in rank.iter().enumerate() {
        for (s, site) in sites.iter().enumerate() {
            let Some(values) = site else { continue };
            let norm = match kind {
                ScoreKind::Retention => 1.0,
                ScoreKind::Magnitude => per_site_mean(values),
            };
            let ties = tie_break
                .and_then(|t| t[b][s].as_deref())
                .filter(|t| t.len() == values.len());
            let tie_norm = ties.map_or(1.0, per_site_mean);
            units.extend(
                values
                    .iter()
                    .enumerate()
                    .map(|(u, &x)| (x / norm, ties.map_or(0.0, |t| t[u] / tie_norm), b, s, u)),
            );
        }
    }
    units.sort_by(|a, b| {
        (a.0.total_cmp(&b.0))
            .then(a.1.total_cmp(&b.1))
            .then((a.2, a.3, a.4).cmp(&(b.2, b.3, b.4)))
    });
    let floor = count_params(&plan_removing(config, scores, kind, &units, units.len()));
    if budget < floor {
        return Err(PlanError::BudgetTooSmall { budget, floor });
    }
    // The count falls (almost) monotonically with each removal: binary-search the fewest removals.
    let (mut lo, mut hi) = (0, units.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if count_params(&plan_removing(config, scores, kind, &units, mid)) <= budget {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    if lo == 0 {
        return Ok(plan_removing(config, scores, kind, &units, 0));
    }
    // The removal that crosses the budget can take more than its own unit with it: a head's
    // last value dimension takes the head's queries (L0 gates heads whole, so its tied cut
    // removes a head's dimensions one after another). Crossing there would land well under the
    // budget (3 % of half the miniature model); instead, of the removals in order from there
    // that fit the budget on their own, take the one leaving the largest model.
    let mut removal: Vec<_> = units[..lo].to_vec();
    let mut best = (count_params(&plan_removing(config, scores, kind, &removal, lo)), lo - 1);
    for next in lo..units.len().min(lo + LANDING_LOOKAHEAD) {
        removal[lo - 1] = units[next];
        let count = count_params(&plan_removing(config, scores, kind, &removal, lo));
        if count <= budget && count > best.0 {
            best = (count, next);
        }
    }
    removal[lo - 1] = units[best.1];
    Ok(plan_removing(config, scores, kind, &removal, lo))
}

/// How many removals past the one that crosses a budget [`plan_budget`] weighs as the last:
/// enough to pass over the rest of a head (24 value dimensions in `tiny`, 64 in `medium`).
const LANDING_LOOKAHEAD: usize = 128;

/// The plan that removes the first `n` of the ranked `units` and keeps everything else.
fn plan_removing(
    config: &ConformerConfig,
    scores: &UnitScores,
    kind: ScoreKind,
    units: &[(f32, f32, usize, usize, usize)],
    n: usize,
) -> Vec<BlockKeep> {
    let mut keep: Vec<[Vec<bool>; 5]> = scores
        .iter()
        .map(|sites| std::array::from_fn(|s| vec![true; sites[s].as_ref().map_or(0, Vec::len)]))
        .collect();
    for &(_, _, b, s, u) in &units[..n] {
        keep[b][s][u] = false;
    }
    scores
        .iter()
        .zip(&keep)
        .map(|(sites, flags)| block_keep(config, sites, kind, |s, _| flags[s].clone()))
        .collect()
}

fn check_blocks(config: &ConformerConfig, scores: &UnitScores) -> Result<(), PlanError> {
    if scores.len() != config.num_blocks {
        return Err(PlanError::WrongBlocks {
            found: scores.len(),
            expected: config.num_blocks,
        });
    }
    Ok(())
}

/// One block's keep-plan from its scores and a keep decision per gated site.
fn block_keep(
    config: &ConformerConfig,
    sites: &PerSite<Vec<f32>>,
    kind: ScoreKind,
    decide: impl Fn(usize, &[f32]) -> Vec<bool>,
) -> BlockKeep {
    let (d, h, ff) = (config.d_model, config.num_heads, config.d_ff);
    let site = |k: SiteKind, width: usize| -> KeptUnits {
        match &sites[k.index()] {
            None => KeptUnits::all(width),
            Some(scores) => {
                let flags = decide(k.index(), scores);
                let index: Vec<usize> = (0..width).filter(|&i| flags[i]).collect();
                let scale = index
                    .iter()
                    .map(|&i| if kind == ScoreKind::Retention { scores[i] } else { 1.0 })
                    .collect();
                KeptUnits { index, scale }
            }
        }
    };
    let per_head = |units: KeptUnits| -> Vec<KeptUnits> {
        let k = d / h;
        (0..h)
            .map(|head| {
                let range = head * k..(head + 1) * k;
                let picked: Vec<(usize, f32)> = units
                    .index
                    .iter()
                    .zip(&units.scale)
                    .filter(|(i, _)| range.contains(i))
                    .map(|(&i, &s)| (i - head * k, s))
                    .collect();
                KeptUnits {
                    index: picked.iter().map(|p| p.0).collect(),
                    scale: picked.iter().map(|p| p.1).collect(),
                }
            })
            .collect()
    };
    let value = per_head(site(SiteKind::AttnValue, d));
    // A head with no value dimension contributes nothing, whatever its queries: drop them too.
    let query = per_head(site(SiteKind::AttnQuery, d))
        .into_iter()
        .zip(&value)
        .map(|(q, v)| if v.is_empty() { KeptUnits::default() } else { q })
        .collect();
    BlockKeep {
        ffn1: site(SiteKind::Ffn1Hidden, ff),
        query,
        value,
        conv: site(SiteKind::ConvInput, d),
        ffn2: site(SiteKind::Ffn2Hidden, ff),
        modules: [1.0; 4],
    }
}

/// Kept and total units per site kind, summed over blocks. The units of a removed module
/// (L0's whole-module gates) count as removed, whatever its unit gates say.
pub fn kept_per_site(config: &ConformerConfig, plan: &[BlockKeep]) -> Vec<(SiteKind, usize, usize)> {
    let (d, ff) = (config.d_model, config.d_ff);
    let count = |module: usize, f: &dyn Fn(&BlockKeep) -> usize| {
        plan.iter().filter(|b| b.modules[module] != 0.0).map(f).sum::<usize>()
    };
    let heads = |per_head: &[KeptUnits]| per_head.iter().map(KeptUnits::len).sum();
    let n = plan.len();
    vec![
        (SiteKind::Ffn1Hidden, count(0, &|b| b.ffn1.len()), n * ff),
        (SiteKind::AttnQuery, count(1, &|b| heads(&b.query)), n * d),
        (SiteKind::AttnValue, count(1, &|b| heads(&b.value)), n * d),
        (SiteKind::ConvInput, count(2, &|b| b.conv.len()), n * d),
        (SiteKind::Ffn2Hidden, count(3, &|b| b.ffn2.len()), n * ff),
    ]
}

/// Per block and site, one value per unit of the dense model: the scale a kept unit carries
/// (1 where nothing is folded), 0 for a removed unit or a removed module. What the lab draws
/// for a pruned export.
pub fn kept_map(config: &ConformerConfig, plan: &[BlockKeep]) -> UnitScores {
    let (d, ff, h) = (config.d_model, config.d_ff, config.num_heads);
    let spread = |units: &KeptUnits, n: usize, alive: bool| -> Vec<f32> {
        let mut v = vec![0.0; n];
        if alive {
            for (&i, &s) in units.index.iter().zip(&units.scale) {
                v[i] = s;
            }
        }
        v
    };
    let heads = |per_head: &[KeptUnits], alive: bool| -> Vec<f32> {
        let all = KeptUnits::concat(
            per_head
                .iter()
                .enumerate()
                .map(|(i, k)| k.shifted(i * d / h))
                .collect::<Vec<_>>()
                .iter(),
        );
        spread(&all, d, alive)
    };
    plan.iter()
        .map(|b| {
            let alive = |m: usize| b.modules[m] != 0.0;
            [
                Some(spread(&b.ffn1, ff, alive(0))),
                Some(heads(&b.query, alive(1))),
                Some(heads(&b.value, alive(1))),
                Some(spread(&b.conv, d, alive(2))),
                Some(spread(&b.ffn2, ff, alive(3))),
            ]
        })
        .collect()
}

/// Parameters removed per site kind by a plan, from the per-unit accounting (module-level
/// savings such as a removed LayerNorm are not attributed to a site).
pub fn removed_params_per_site(config: &ConformerConfig, plan: &[BlockKeep]) -> Vec<(SiteKind, usize)> {
    kept_per_site(config, plan)
        .into_iter()
        .map(|(kind, kept, total)| {
            (
                kind,
                (total - kept) * params_per_unit(kind, config.d_model, config.conv_kernel),
            )
        })
        .collect()
}

/// The share of the prunable parameters (those the five sites' units own) that a plan removes:
/// the quantity L0's `--target-sparsity` aims at, measured on the cut model instead of
/// expected under the gates.
pub fn prunable_sparsity(config: &ConformerConfig, plan: &[BlockKeep]) -> f64 {
    let ppu = |kind: SiteKind| params_per_unit(kind, config.d_model, config.conv_kernel);
    let (removed, total) = kept_per_site(config, plan)
        .into_iter()
        .fold((0, 0), |(removed, total), (kind, kept, units)| {
            (removed + (units - kept) * ppu(kind), total + units * ppu(kind))
        });
    removed as f64 / total.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_unit(config: &ConformerConfig) -> BlockKeep {
        let per_head = config.d_model / config.num_heads;
        BlockKeep {
            ffn1: KeptUnits::all(config.d_ff),
            query: vec![KeptUnits::all(per_head); config.num_heads],
            value: vec![KeptUnits::all(per_head); config.num_heads],
            conv: KeptUnits::all(config.d_model),
            ffn2: KeptUnits::all(config.d_ff),
            modules: [1.0; 4],
        }
    }

    #[test]
    fn a_removed_module_removes_its_units_from_the_counts() {
        let config = ConformerConfig::new(80, 29, 8, 2, 2, 16, 3, 4);
        let mut removed_attention = every_unit(&config);
        removed_attention.modules = [1.0, 0.0, 1.0, 1.0];
        let mut half_ffn1 = every_unit(&config);
        half_ffn1.ffn1 = KeptUnits {
            index: (0..8).collect(),
            scale: vec![1.0; 8],
        };
        let plan = vec![removed_attention, half_ffn1];
        let kept = kept_per_site(&config, &plan);
        assert_eq!(kept[0], (SiteKind::Ffn1Hidden, 16 + 8, 32));
        assert_eq!(kept[1], (SiteKind::AttnQuery, 8, 16));
        assert_eq!(kept[2], (SiteKind::AttnValue, 8, 16));
        assert_eq!(kept[3], (SiteKind::ConvInput, 16, 16));

        // d = 8: a query unit owns 2d + 2 = 18 parameters, a value or FFN unit 2d + 1 = 17, a
        // conv channel 2(d + 1) + (k + 1) + 4 + d = 34.
        let removed = 8 * 18 + 8 * 17 + 8 * 17;
        let total = 2 * (2 * 16 * 17 + 8 * 18 + 8 * 17 + 8 * 34);
        let sparsity = prunable_sparsity(&config, &plan);
        assert!((sparsity - removed as f64 / total as f64).abs() < 1e-12, "{sparsity}");
        assert_eq!(
            prunable_sparsity(&config, &[every_unit(&config), every_unit(&config)]),
            0.0
        );
    }

    #[test]
    fn tied_ranks_are_cut_by_the_tie_break_not_by_position() {
        let config = ConformerConfig::new(80, 29, 8, 2, 2, 16, 3, 4);
        // Gates that have not learned: every FFN unit ranks 0.9. The norms are distinct, block
        // 1's twice block 0's scale, so dividing by each site's mean is what makes them
        // comparable; the weakest are spread over both blocks (u · 7 mod 16 is a permutation).
        let tied: UnitScores = (0..2)
            .map(|_| std::array::from_fn(|s| (s == SiteKind::Ffn1Hidden.index()).then(|| vec![0.9_f32; 16])))
            .collect();
        let norm = |b: usize, u: usize| (1 + (u * 7 + b * 3) % 16) as f32 * (1 + b) as f32;
        let norms: UnitScores = (0..2)
            .map(|b| {
                std::array::from_fn(|s| {
                    (s == SiteKind::Ffn1Hidden.index()).then(|| (0..16).map(|u| norm(b, u)).collect())
                })
            })
            .collect();
        let count = |plan: &[BlockKeep]| crate::prune::planned_params(&config, plan).total();
        let dense = count(&[every_unit(&config), every_unit(&config)]);
        // An FFN unit owns 2d + 1 = 17 parameters: this budget removes 16 of the 32.
        let budget = dense - 16 * 17;
        let kept = |plan: &[BlockKeep]| -> Vec<(usize, usize)> {
            plan.iter()
                .enumerate()
                .flat_map(|(b, keep)| keep.ffn1.index.iter().map(move |&u| (b, u)))
                .collect()
        };
        let by_norm = plan_budget(&config, &tied, &tied, Some(&norms), ScoreKind::Retention, budget, count).unwrap();
        // Each site's norms over their mean: the 16 largest survive.
        let mean = |b: usize| (0..16).map(|u| norm(b, u)).sum::<f32>() / 16.0;
        let mut ranked: Vec<(f32, usize, usize)> = (0..2)
            .flat_map(|b| (0..16).map(move |u| (norm(b, u) / mean(b), b, u)))
            .collect();
        ranked.sort_by(|x, y| y.0.total_cmp(&x.0));
        let mut strongest: Vec<(usize, usize)> = ranked[..16].iter().map(|&(_, b, u)| (b, u)).collect();
        strongest.sort();
        assert_eq!(kept(&by_norm), strongest);
        // Without a tie-break the order is by position: block 0's units go first, all of them
        // (and one of block 1's: the emptied module's count is not quite 16 units').
        let by_position = plan_budget(&config, &tied, &tied, None, ScoreKind::Retention, budget, count).unwrap();
        assert!(
            kept(&by_position).iter().all(|&(b, _)| b == 1),
            "{:?}",
            kept(&by_position)
        );
        // A tie-break never overrides the ranks themselves: with unit 3 of block 0 ranked
        // lowest, it goes even though its norm is among the largest.
        let mut ranked_apart = tied.clone();
        let weakest = (0..16).max_by(|&a, &b| norm(0, a).total_cmp(&norm(0, b))).unwrap();
        ranked_apart[0][SiteKind::Ffn1Hidden.index()].as_mut().unwrap()[weakest] = 0.1;
        let plan = plan_budget(
            &config,
            &ranked_apart,
            &ranked_apart,
            Some(&norms),
            ScoreKind::Retention,
            budget,
            count,
        );
        assert!(!kept(&plan.unwrap()).contains(&(0, weakest)));
    }
}
