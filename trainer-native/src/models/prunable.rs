//! What `prune` and `sweep` share: a checkpoint opened for pruning and the scores of its units.

use std::path::Path;

use prunelab_engine::burn::prelude::*;
use prunelab_engine::prune::{CutSource, CutTarget, Pruned, Selection, UnitScores};
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{load_gates, load_inference_model};
use prunelab_engine::train::TrainerState;

use prunelab_engine::stats::median;

use super::read_checkpoint;

/// A checkpoint opened for pruning: its saved state, and its model with the scores that
/// decide what to cut (the engine's one pruning entry point).
pub struct Prunable {
    pub name: String,
    pub state: TrainerState,
    pub source: CutSource,
}

/// Opens `path`: a gated run is scored by its learned gates, any other by weight norms (also
/// a gated run when `force_magnitude`).
pub fn open_prunable(path: &Path, device: &Device, force_magnitude: bool) -> Result<Prunable, String> {
    let name = path.display().to_string();
    let state = read_checkpoint(path)?;
    let model = load_inference_model(&state, None, device, &name).map_err(|e| e.to_string())?;
    let gates = load_gates(&state, device, &name).map_err(|e| e.to_string())?;
    let source = block_on(CutSource::new(
        model,
        state.config.model.clone(),
        gates.as_ref(),
        &state.config.prune,
        force_magnitude,
    ))
    .map_err(|e| format!("{name}: {e}"))?;
    Ok(Prunable { name, state, source })
}

impl Prunable {
    /// The physically smaller model for `selection`; errors name the checkpoint.
    pub fn cut(&self, selection: Selection) -> Result<Pruned, String> {
        self.source.cut(selection).map_err(|e| format!("{}: {e}", self.name))
    }

    /// The parameter budget that meets `target` (see `CutSource::budget_for`); errors name
    /// the checkpoint and the target.
    pub fn budget_for(&self, target: CutTarget) -> Result<usize, String> {
        self.source
            .budget_for(target)
            .map_err(|e| format!("{}: cannot cut to {target}: {e}", self.name))
    }
}

/// How decided a run's learned retention is: the median retention of the units a cut keeps,
/// and the share of all units still undecided (retention strictly between 0.1 and 0.9).
/// A kept unit with retention 0.65 was dropped in a third of the training steps, so a low
/// median means the kept model trained under heavy noise and its cut is a soft boundary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetentionSpread {
    /// `None` when the cut keeps no gated unit (there is no median to give).
    pub kept_median: Option<f64>,
    pub undecided: f64,
}

impl RetentionSpread {
    /// From every unit's retention `scores` and what a cut kept of them (`kept`, per unit of the
    /// dense model: the retention folded into a kept unit, 0 for a removed one; see
    /// `prune::kept_map`). `None` when there are no scores at all.
    pub fn of(scores: &UnitScores, kept: &UnitScores) -> Option<Self> {
        let all: Vec<f32> = scores.iter().flatten().flatten().flatten().copied().collect();
        if all.is_empty() {
            return None;
        }
        // Only the scored sites: an ungated site is kept whole, with nothing learned to report.
        let kept: Vec<f64> = scores
            .iter()
            .zip(kept)
            .flat_map(|(scored, kept)| scored.iter().zip(kept).filter(|(s, _)| s.is_some()))
            .flat_map(|(_, kept)| kept.iter().flatten())
            .filter(|&&scale| scale != 0.0)
            .map(|&scale| f64::from(scale))
            .collect();
        let kept_median = median(&kept);
        let undecided = all.iter().filter(|&&p| p > 0.1 && p < 0.9).count() as f64 / all.len() as f64;
        Some(Self { kept_median, undecided })
    }
}

/// `--budget` (and each of `--budgets`) in the engine's one cut-target grammar: a parameter
/// count (`686000`), a share kept (`50%` or `0.5`) or a FLOPs speed-up (`2x`).
pub fn parse_budget(text: &str) -> Result<CutTarget, String> {
    CutTarget::parse(text).map_err(|e| format!("--budget {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_spread_counts_kept_and_undecided_units() {
        // Two blocks; one site gated in each, one site not gated.
        let scores: UnitScores = vec![
            [Some(vec![0.95, 0.6, 0.3, 0.02]), None, None, None, None],
            [None, Some(vec![0.99, 0.7]), None, None, None],
        ];
        // What a cut at 0.5 keeps: the units at 0.6 and above, with their retention folded in;
        // the ungated sites whole (scale 1), which must not count.
        let kept: UnitScores = vec![
            [Some(vec![0.95, 0.6, 0.0, 0.0]), Some(vec![1.0; 2]), None, None, None],
            [Some(vec![1.0; 4]), Some(vec![0.99, 0.7]), None, None, None],
        ];
        let spread = RetentionSpread::of(&scores, &kept).unwrap();
        // Kept: 0.6, 0.7, 0.95, 0.99 → median 0.825 (the mean of the middle two). Undecided:
        // 0.6, 0.3, 0.7 of 6.
        assert!((spread.kept_median.unwrap() - 0.825).abs() < 1e-6);
        assert!((spread.undecided - 0.5).abs() < 1e-12);
        let nothing: UnitScores = vec![
            [Some(vec![0.0; 4]), None, None, None, None],
            [None, Some(vec![0.0; 2]), None, None, None],
        ];
        let none_kept = RetentionSpread::of(&scores, &nothing).unwrap();
        assert_eq!(none_kept.kept_median, None);
        let empty = vec![[None, None, None, None, None]];
        assert_eq!(RetentionSpread::of(&empty, &empty), None);
    }
}
