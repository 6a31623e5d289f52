//! Gates that have not learned yet. At the start of a gated run every gate holds its initial
//! logit, and after a few steps they differ only by noise: a budget cut that ranks units by
//! them removes units by position or at random (in the lab, "Cut to 50%" before training scored
//! 99.5 % dev WER). When the units' ranks spread less than [`UNDECIDED_SPREAD`], the units
//! are ranked by their weight norms instead (each relative to its site's mean, as the
//! magnitude method ranks them), and the cut says so.

use super::UnitScores;
use crate::stats::percentile;

/// The widest spread of rank scores (retention or keep probability, in [0, 1]) still counted as
/// gates that have not learned: a hundredth between the 10th and the 90th percentile of all
/// units (percentiles, so that a few units the first steps moved do not count as learning). Four
/// steps of adaptive dropout from the trained start spread the units over 0.004; a 600-step run
/// ends with 0.1 and more (`docs/figures/issue32-trajectories`).
pub const UNDECIDED_SPREAD: f64 = 0.01;

/// Whether the gated units' ranks spread less than [`UNDECIDED_SPREAD`] (false when none is
/// gated).
pub fn gates_undecided(rank: &UnitScores) -> bool {
    let mut values: Vec<f64> = rank
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .map(|&x| f64::from(x))
        .collect();
    values.sort_by(f64::total_cmp);
    match (percentile(&values, 0.1), percentile(&values, 0.9)) {
        (Some(low), Some(high)) => high - low < UNDECIDED_SPREAD,
        _ => false,
    }
}

/// `norms` (weight norms of every unit) as a rank with `rank`'s layout: each site's norms over
/// their mean, except that a unit whose gate is closed (its score, the scale a kept unit
/// carries, is 0: L0 closes its expected number of gates even when they are tied) ranks 0 and
/// goes first, as it contributes nothing. `None` when a gated site has no norms of the same
/// length, so the gates' own rank is kept rather than a mixture.
pub fn rank_by_norms(rank: &UnitScores, norms: &UnitScores, scores: &UnitScores) -> Option<UnitScores> {
    if rank.len() != norms.len() || rank.len() != scores.len() {
        return None;
    }
    rank.iter()
        .zip(norms)
        .zip(scores)
        .map(|((sites, site_norms), site_scores)| {
            let mut ranked: [Option<Vec<f32>>; 5] = Default::default();
            for (s, site) in sites.iter().enumerate() {
                let Some(site) = site else { continue };
                let norms = site_norms[s].as_ref().filter(|n| n.len() == site.len())?;
                let scale = site_scores[s].as_ref().filter(|n| n.len() == site.len())?;
                let mean = (norms.iter().sum::<f32>() / norms.len().max(1) as f32).max(f32::MIN_POSITIVE);
                ranked[s] = Some(
                    norms
                        .iter()
                        .zip(scale)
                        .map(|(n, &kept_scale)| if kept_scale == 0.0 { 0.0 } else { n / mean })
                        .collect(),
                );
            }
            Some(ranked)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_block(a: Vec<f32>, b: Vec<f32>) -> UnitScores {
        vec![[Some(a), None, Some(b), None, None]]
    }

    #[test]
    fn tied_or_nearly_tied_gates_are_undecided_and_ranked_by_relative_norms() {
        assert!(gates_undecided(&one_block(vec![0.95; 4], vec![0.95; 2])));
        assert!(gates_undecided(&one_block(
            vec![0.951, 0.952, 0.95, 0.955],
            vec![0.953, 0.95]
        )));
        assert!(!gates_undecided(&one_block(vec![0.95, 0.7, 0.95, 0.95], vec![0.95; 2])));
        assert!(!gates_undecided(&Vec::new()), "no gates, nothing undecided");
        let rank = one_block(vec![0.95; 4], vec![0.95; 2]);
        // Norms twice as large at the second site rank the same relative to their site.
        let norms = one_block(vec![1.0, 3.0, 2.0, 2.0], vec![2.0, 6.0]);
        let ranked = rank_by_norms(&rank, &norms, &rank).unwrap();
        assert_eq!(ranked, one_block(vec![0.5, 1.5, 1.0, 1.0], vec![0.5, 1.5]));
        // A closed gate (scale 0) goes first whatever its norm.
        let closed = one_block(vec![0.95, 0.0, 0.95, 0.95], vec![0.95; 2]);
        let ranked = rank_by_norms(&rank, &norms, &closed).unwrap();
        assert_eq!(ranked, one_block(vec![0.5, 0.0, 1.0, 1.0], vec![0.5, 1.5]));
        // A gated site without norms of its length keeps the gates' rank.
        assert!(rank_by_norms(&rank, &one_block(vec![1.0; 4], vec![1.0; 3]), &rank).is_none());
    }
}
