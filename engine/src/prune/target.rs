//! Cutting to a target someone types: a parameter count, a share of the model kept, or a
//! speed-up. A target becomes a parameter budget (`Selection::Budget`), which removes the
//! weakest units first under the method's keep rule; a speed-up is estimated from FLOPs per
//! second of audio, the one cost known before the cut is made and timed.

pub use crate::cut_target::{CutTarget, TargetError};

use super::{CutSource, PlanError, Selection, flops_per_second, kept_budget, planned_params, planned_shapes};

impl CutSource {
    /// The selection that meets `target`: the largest model within it (a parameter budget;
    /// see [`CutSource::budget_for`]).
    pub fn selection_for(&self, target: CutTarget) -> Result<Selection, PlanError> {
        self.budget_for(target).map(Selection::Budget)
    }

    /// The parameter budget that meets `target`. A speed-up is found by bisection on the
    /// budget, planning only (no surgery), since FLOPs fall as the budget does.
    pub fn budget_for(&self, target: CutTarget) -> Result<usize, PlanError> {
        if !self.can_plan() {
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
                let wanted = flops_per_second(&self.config, &self.dense_shapes()) / times;
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
        Ok(budget)
    }
}
