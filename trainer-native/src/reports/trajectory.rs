//! Retention over training, read from a run's trace: per site kind, the mean and the spread of
//! every unit's retention at each snapshot, and the largest difference between two runs of one
//! model unit by unit (how far two ways of running the same training drifted apart).

use prunelab_engine::gates::SiteKind;
use prunelab_engine::store::Trace;

/// The lower and upper share of units the spread leaves out on each side.
pub const SPREAD_PERCENTILES: (f64, f64) = (0.1, 0.9);

/// One site kind's retention over the snapshots of a trace: `(step, value)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct KindCurve {
    pub kind: SiteKind,
    /// Gated units of this kind, all blocks together.
    pub units: usize,
    pub mean: Vec<(f64, f64)>,
    /// The 10th and 90th percentiles of the units' retention.
    pub low: Vec<(f64, f64)>,
    pub high: Vec<(f64, f64)>,
}

/// The curves of every site kind the trace's method gates, in forward order.
pub fn kind_curves(trace: &Trace) -> Vec<KindCurve> {
    SiteKind::ALL
        .into_iter()
        .filter_map(|kind| {
            let mut curve = KindCurve {
                kind,
                units: 0,
                mean: Vec::new(),
                low: Vec::new(),
                high: Vec::new(),
            };
            for (snapshot, &step) in trace.steps.iter().enumerate() {
                let mut scores = trace.kind_scores(snapshot, kind);
                if scores.is_empty() {
                    return None;
                }
                curve.units = scores.len();
                scores.sort_by(f32::total_cmp);
                let step = step as f64;
                let mean = scores.iter().map(|&s| f64::from(s)).sum::<f64>() / scores.len() as f64;
                curve.mean.push((step, mean));
                curve.low.push((step, percentile(&scores, SPREAD_PERCENTILES.0)));
                curve.high.push((step, percentile(&scores, SPREAD_PERCENTILES.1)));
            }
            (!curve.mean.is_empty()).then_some(curve)
        })
        .collect()
}

/// The nearest-rank percentile `share` (0 to 1) of `sorted`, which is not empty.
fn percentile(sorted: &[f32], share: f64) -> f64 {
    let rank = (share * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Where two runs' retention differed most.
#[derive(Debug, Clone, PartialEq)]
pub struct LargestDifference {
    pub value: f64,
    pub step: usize,
    pub block: usize,
    pub kind: SiteKind,
    pub unit: usize,
}

/// How `other` differs from `first`, unit by unit, at the snapshot steps both recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Divergence {
    /// `(step, largest |difference| over all units)` at each shared step.
    pub per_step: Vec<(f64, f64)>,
    /// `None` when the runs share no snapshot step.
    pub largest: Option<LargestDifference>,
}

/// The divergence of `other` from `first`; `None` when their sites differ (another model or
/// another method), so that unit `i` of one is not unit `i` of the other.
pub fn divergence(first: &Trace, other: &Trace) -> Option<Divergence> {
    if first.sites != other.sites {
        return None;
    }
    let mut result = Divergence {
        per_step: Vec::new(),
        largest: None,
    };
    for (a, &step) in first.steps.iter().enumerate() {
        let Some(b) = other.steps.iter().position(|&s| s == step) else {
            continue;
        };
        let mut step_largest = 0.0f64;
        for site in 0..first.sites.len() {
            let pairs = first.site_scores(a, site).iter().zip(other.site_scores(b, site));
            for (unit, (x, y)) in pairs.enumerate() {
                let value = f64::from((x - y).abs());
                step_largest = step_largest.max(value);
                if result.largest.as_ref().is_none_or(|l| value > l.value) {
                    result.largest = Some(LargestDifference {
                        value,
                        step,
                        block: first.sites[site].block,
                        kind: first.sites[site].kind,
                        unit,
                    });
                }
            }
        }
        result.per_step.push((step as f64, step_largest));
    }
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prunelab_engine::gates::PerSite;

    /// Two blocks gating FFN1 (4 units) and attention values (2 units).
    fn trace(snapshots: &[(usize, [f32; 4], [f32; 2])]) -> Trace {
        let layout: Vec<PerSite<usize>> = vec![[Some(4), None, Some(2), None, None]; 2];
        let mut trace = Trace::new("test".into(), &layout);
        for &(step, ffn, value) in snapshots {
            let block = [Some(ffn.to_vec()), None, Some(value.to_vec()), None, None];
            trace.record(step, &[block.clone(), block]);
        }
        trace
    }

    #[test]
    fn curves_give_mean_and_nearest_rank_spread_per_kind() {
        let t = trace(&[
            (0, [0.1, 0.2, 0.3, 0.4], [1.0, 1.0]),
            (10, [0.0, 0.0, 0.0, 0.8], [0.5, 0.7]),
        ]);
        let curves = kind_curves(&t);
        assert_eq!(curves.len(), 2, "only the gated kinds");
        let ffn = &curves[0];
        assert_eq!((ffn.kind, ffn.units), (SiteKind::Ffn1Hidden, 8));
        assert!((ffn.mean[0].1 - 0.25).abs() < 1e-6 && (ffn.mean[1].1 - 0.2).abs() < 1e-6);
        // Eight units: the 10th percentile is the 1st smallest, the 90th the 8th.
        assert_eq!(ffn.low[0], (0.0, f64::from(0.1f32)));
        assert_eq!(ffn.high[0], (0.0, f64::from(0.4f32)));
        assert_eq!(ffn.low[1].0, 10.0);
        assert_eq!(curves[1].kind, SiteKind::AttnValue);
        assert!((curves[1].mean[1].1 - 0.6).abs() < 1e-6);
    }

    #[test]
    fn divergence_finds_the_unit_and_step_and_skips_unshared_steps() {
        let a = trace(&[
            (0, [0.5; 4], [0.5; 2]),
            (10, [0.5; 4], [0.5; 2]),
            (20, [0.5; 4], [0.5; 2]),
        ]);
        let mut b = trace(&[(0, [0.5; 4], [0.5; 2]), (20, [0.5, 0.5, 0.25, 0.5], [0.5, 0.6])]);
        // Change one unit of the second block only.
        let last = b.snapshots.len() - 1;
        b.snapshots[last][6 + 1] = 0.9;
        let d = divergence(&a, &b).expect("same sites");
        assert_eq!(d.per_step.len(), 2, "step 10 is in one trace only");
        assert_eq!(d.per_step[0], (0.0, 0.0));
        let largest = d.largest.unwrap();
        assert_eq!(
            (largest.step, largest.block, largest.kind, largest.unit),
            (20, 1, SiteKind::Ffn1Hidden, 1)
        );
        assert!((largest.value - 0.4).abs() < 1e-6, "{largest:?}");
        assert!((d.per_step[1].1 - 0.4).abs() < 1e-6);
        let other_model = Trace::new("other".into(), &[[Some(4), None, None, None, None]]);
        assert!(divergence(&a, &other_model).is_none());
    }
}
