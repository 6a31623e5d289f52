//! Cutting again a model that was already cut (the magnitude method cuts its model once during
//! training and trains on). Its units are a subset of the dense model's, recorded by that
//! earlier cut's keep-plan. Its scores are put back at their dense positions (0 where the
//! earlier cut removed a unit), so plans, counts, maps and exports keep indexing the dense
//! layout; a new plan is held within the earlier one and re-indexed onto the smaller model's
//! own units for the surgery.

use crate::gates::{PerSite, SiteKind};
use crate::model::{BlockKeep, ConformerConfig, KeptUnits};

use super::UnitScores;

/// The scores of an already cut model (`current`, indexed by its own units) at the positions
/// of the dense model of `config` that `earlier` kept; every unit `earlier` removed scores 0.
/// A site kind scored anywhere is scored in every block.
pub(super) fn spread_onto_dense(config: &ConformerConfig, earlier: &[BlockKeep], current: &UnitScores) -> UnitScores {
    let scored: Vec<SiteKind> = SiteKind::ALL
        .into_iter()
        .filter(|k| current.iter().any(|sites| sites[k.index()].is_some()))
        .collect();
    let (d, ff, heads) = (config.d_model, config.d_ff, config.num_heads);
    let head_width = d / heads.max(1);
    earlier
        .iter()
        .zip(current)
        .map(|(keep, sites)| {
            let mut dense = PerSite::default();
            for &kind in &scored {
                let width = match kind {
                    SiteKind::Ffn1Hidden | SiteKind::Ffn2Hidden => ff,
                    _ => d,
                };
                let mut values = vec![0.0; width];
                let own = sites[kind.index()].as_deref().unwrap_or_default();
                for (unit, dense_unit) in dense_positions(keep, kind, head_width).into_iter().enumerate() {
                    if let (Some(&score), Some(slot)) = (own.get(unit), values.get_mut(dense_unit)) {
                        *slot = score;
                    }
                }
                dense[kind.index()] = Some(values);
            }
            dense
        })
        .collect()
}

/// Where each unit of a block cut by `keep` sits in the dense block, in the cut block's order:
/// a feed-forward or convolution site's kept indices; for attention, the live heads' (those
/// with a value dimension left) kept dimensions, head after head.
fn dense_positions(keep: &BlockKeep, kind: SiteKind, head_width: usize) -> Vec<usize> {
    let per_head = |parts: &[KeptUnits]| -> Vec<usize> {
        live_heads(keep)
            .flat_map(|h| parts[h].index.iter().map(move |&i| h * head_width + i))
            .collect()
    };
    match kind {
        SiteKind::Ffn1Hidden => keep.ffn1.index.clone(),
        SiteKind::Ffn2Hidden => keep.ffn2.index.clone(),
        SiteKind::ConvInput => keep.conv.index.clone(),
        SiteKind::AttnQuery => per_head(&keep.query),
        SiteKind::AttnValue => per_head(&keep.value),
    }
}

/// The heads of a cut block that survive: those with a value dimension left.
fn live_heads(keep: &BlockKeep) -> impl Iterator<Item = usize> + '_ {
    (0..keep.value.len()).filter(|&h| !keep.value[h].is_empty())
}

/// `plan` (over the dense model) without any unit `earlier` removed: what can still be kept.
pub(super) fn within(earlier: &[BlockKeep], plan: Vec<BlockKeep>) -> Vec<BlockKeep> {
    let both = |new: &KeptUnits, old: &KeptUnits| -> KeptUnits {
        let (index, scale) = new
            .index
            .iter()
            .zip(&new.scale)
            .filter(|(i, _)| old.index.contains(i))
            .map(|(&i, &s)| (i, s))
            .unzip();
        KeptUnits { index, scale }
    };
    plan.into_iter()
        .zip(earlier)
        .map(|(new, old)| {
            let value: Vec<KeptUnits> = new.value.iter().zip(&old.value).map(|(n, o)| both(n, o)).collect();
            // A head with no value dimension left contributes nothing: its queries go too.
            let query = new
                .query
                .iter()
                .zip(&old.query)
                .zip(&value)
                .map(|((n, o), v)| if v.is_empty() { KeptUnits::default() } else { both(n, o) })
                .collect();
            BlockKeep {
                ffn1: both(&new.ffn1, &old.ffn1),
                query,
                value,
                conv: both(&new.conv, &old.conv),
                ffn2: both(&new.ffn2, &old.ffn2),
                modules: std::array::from_fn(|m| if old.modules[m] == 0.0 { 0.0 } else { new.modules[m] }),
            }
        })
        .collect()
}

/// `plan` (over the dense model, within `earlier`) re-indexed onto the units of the model
/// `earlier` made: what that model's surgery takes.
pub(super) fn onto_cut_model(earlier: &[BlockKeep], plan: &[BlockKeep]) -> Vec<BlockKeep> {
    let relative = |new: &KeptUnits, old: &KeptUnits| -> KeptUnits {
        let (index, scale) = new
            .index
            .iter()
            .zip(&new.scale)
            .filter_map(|(i, &s)| old.index.iter().position(|o| o == i).map(|p| (p, s)))
            .unzip();
        KeptUnits { index, scale }
    };
    plan.iter()
        .zip(earlier)
        .map(|(new, old)| {
            let heads = |new: &[KeptUnits], old_parts: &[KeptUnits]| -> Vec<KeptUnits> {
                live_heads(old).map(|h| relative(&new[h], &old_parts[h])).collect()
            };
            BlockKeep {
                ffn1: relative(&new.ffn1, &old.ffn1),
                query: heads(&new.query, &old.query),
                value: heads(&new.value, &old.value),
                conv: relative(&new.conv, &old.conv),
                ffn2: relative(&new.ffn2, &old.ffn2),
                modules: new.modules,
            }
        })
        .collect()
}
