//! What "how much to cut" means, once for every front door: a CLI `--budget`, the lab's slider,
//! a run's periodic evaluation.

use crate::gates::Method;

/// What a method's one cut setting (the lab's slider, a run's evaluation point) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KnobMeaning {
    /// Keep units whose learned retention reaches the value (adaptive dropout).
    RetentionThreshold,
    /// Remove this share of the model's parameters, weakest units first (L0: at least the
    /// units its own gates close; magnitude and dense runs: by weight norms).
    RemovedFraction,
}

/// A method's cut setting: what it means and how to label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Knob {
    pub meaning: KnobMeaning,
    /// A short label for a slider ("retention threshold").
    pub label: &'static str,
    /// One sentence on what moving it does.
    pub help: &'static str,
}

impl Knob {
    /// The cut setting of the method whose scores decide the cut.
    pub fn of(method: Method) -> Self {
        match method {
            Method::AdaptiveDropout => Self {
                meaning: KnobMeaning::RetentionThreshold,
                label: "retention threshold",
                help: "Units whose learned retention falls below the threshold are removed.",
            },
            Method::L0 => Self {
                meaning: KnobMeaning::RemovedFraction,
                label: "share of parameters removed",
                help: "Units whose L0 gate is closed always go; a larger share removes the least \
                       likely open gates next. 0 is L0's own cut.",
            },
            Method::Magnitude | Method::None => Self {
                meaning: KnobMeaning::RemovedFraction,
                label: "share of parameters removed",
                help: "No learned gates: that share of parameters is removed, weakest weights first.",
            },
        }
    }
}

impl Knob {
    /// Where the knob sits unless someone moves it: a run's retention threshold, or no share
    /// removed beyond the method's own rule.
    pub fn default_value(&self, run_threshold: f64) -> f64 {
        match self.meaning {
            KnobMeaning::RetentionThreshold => run_threshold,
            KnobMeaning::RemovedFraction => 0.0,
        }
    }
}

/// The parameters a budget number keeps of a `dense` model: below 1 the share **kept**
/// (rounded), otherwise a count, as run configs saved budgets before `CutTarget` (which reads
/// them so, and turns a share into parameters through this).
pub fn kept_budget(value: f64, dense: usize) -> usize {
    if value < 1.0 {
        (value * dense as f64).round() as usize
    } else {
        value as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_below_one_is_the_share_kept_and_above_is_a_count() {
        assert_eq!(kept_budget(0.25, 1000), 250);
        assert_eq!(kept_budget(600.0, 1000), 600);
    }
}
