//! Cutting to a target someone types: a parameter count, a share of the model kept, or a
//! speed-up. A target becomes a parameter budget (`Selection::Budget`), which removes the
//! weakest units first under the method's keep rule; a speed-up is estimated from FLOPs per
//! second of audio, the one cost known before the cut is made and timed.

use std::fmt;

use super::{CutSource, PlanError, Selection, flops_per_second, kept_budget, planned_params, planned_shapes};

/// What a cut must fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CutTarget {
    /// At most this many parameters.
    Parameters(usize),
    /// At most this share of the dense model's parameters, in (0, 1).
    Share(f64),
    /// At least this many times fewer FLOPs per second of audio than the dense model (> 1).
    Speedup(f64),
}

/// Why typed text is not a cut target; each names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a target: give parameters (686000), a share kept (50%) or a speed-up (2x)")]
    NotATarget(String),
    #[error("a share kept must be between 0 and 100 % (got {0})")]
    ShareOutOfRange(String),
    #[error("a speed-up must be above 1 (got {0})")]
    SpeedupTooSmall(String),
    #[error("a parameter count must be a whole number of at least 1 (got {0})")]
    NotACount(String),
}

impl CutTarget {
    /// Reads `686000` (parameters), `50%` (share kept) or `2x` (speed-up).
    pub fn parse(text: &str) -> Result<Self, TargetError> {
        let text = text.trim();
        let number = |digits: &str| -> Result<f64, TargetError> {
            digits
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .ok_or_else(|| TargetError::NotATarget(text.to_string()))
        };
        if let Some(percent) = text.strip_suffix('%') {
            let share = number(percent)? / 100.0;
            return if share > 0.0 && share < 1.0 {
                Ok(Self::Share(share))
            } else {
                Err(TargetError::ShareOutOfRange(text.to_string()))
            };
        }
        if let Some(times) = text.strip_suffix(['x', '×']) {
            let speedup = number(times)?;
            return if speedup > 1.0 {
                Ok(Self::Speedup(speedup))
            } else {
                Err(TargetError::SpeedupTooSmall(text.to_string()))
            };
        }
        let count = number(text)?;
        if count >= 1.0 && count.fract() == 0.0 {
            Ok(Self::Parameters(count as usize))
        } else {
            Err(TargetError::NotACount(text.to_string()))
        }
    }
}

impl fmt::Display for CutTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parameters(n) => write!(f, "{n} parameters"),
            Self::Share(share) => {
                // Up to four decimals, without trailing zeros: "50%", "33.3333%".
                let percent = format!("{:.4}", 100.0 * share);
                let percent = percent.trim_end_matches('0').trim_end_matches('.');
                write!(f, "{percent}% of the parameters")
            }
            Self::Speedup(x) => write!(f, "{x}× fewer FLOPs"),
        }
    }
}

impl CutSource {
    /// The selection that meets `target`: the largest model within it. A speed-up is found by
    /// bisection on the parameter budget, planning only (no surgery), since FLOPs fall as the
    /// budget does.
    pub fn selection_for(&self, target: CutTarget) -> Result<Selection, PlanError> {
        if self.already_cut() {
            return Err(PlanError::AlreadyCut);
        }
        let dense = self.dense_params();
        let budget = match target {
            CutTarget::Parameters(n) => n,
            CutTarget::Share(share) => kept_budget(share, dense),
            CutTarget::Speedup(times) => {
                let flops_of = |budget: usize| -> Result<f64, PlanError> {
                    let keep = self.plan(Selection::Budget(budget))?;
                    Ok(flops_per_second(&self.config, &planned_shapes(&keep)))
                };
                let wanted = flops_per_second(&self.config, &self.model.block_shapes()) / times;
                // The smallest model a plan can make: every gated unit removed.
                let floor = match self.plan(Selection::Budget(1)) {
                    Err(PlanError::BudgetTooSmall { floor, .. }) => floor,
                    other => other.map(|keep| planned_params(&self.config, &keep).total())?,
                };
                let (mut low, mut high) = (floor, dense.saturating_sub(1));
                if flops_of(low)? > wanted {
                    return Err(PlanError::TargetUnreachable {
                        target: target.to_string(),
                    });
                }
                // Invariant: the budget `low` meets the target; find the largest that does.
                while low < high {
                    let middle = low + (high - low).div_ceil(2);
                    if flops_of(middle)? <= wanted {
                        low = middle;
                    } else {
                        high = middle - 1;
                    }
                }
                low
            }
        };
        Ok(Selection::Budget(budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_counts_shares_and_speedups_and_nonsense_is_refused() {
        assert_eq!(CutTarget::parse("686000"), Ok(CutTarget::Parameters(686_000)));
        assert_eq!(CutTarget::parse(" 50% "), Ok(CutTarget::Share(0.5)));
        assert_eq!(CutTarget::parse("2x"), Ok(CutTarget::Speedup(2.0)));
        assert_eq!(CutTarget::parse("1.5×"), Ok(CutTarget::Speedup(1.5)));
        for bad in [
            "", "half", "0%", "100%", "1x", "0.5x", "12.5", "0", "-3", "NaN%", "infx",
        ] {
            assert!(CutTarget::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(CutTarget::parse("1x"), Err(TargetError::SpeedupTooSmall("1x".into())));
        assert_eq!(
            CutTarget::parse("100%"),
            Err(TargetError::ShareOutOfRange("100%".into()))
        );
        assert_eq!(CutTarget::parse("12.5"), Err(TargetError::NotACount("12.5".into())));
        let half = CutTarget::parse("half").unwrap_err().to_string();
        assert!(half.starts_with("\"half\" is not a target"), "{half}");
    }

    #[test]
    fn a_share_is_written_without_trailing_zeros() {
        assert_eq!(CutTarget::Share(0.5).to_string(), "50% of the parameters");
        assert_eq!(CutTarget::Share(1.0 / 3.0).to_string(), "33.3333% of the parameters");
        assert_eq!(CutTarget::Share(0.125).to_string(), "12.5% of the parameters");
    }
}
