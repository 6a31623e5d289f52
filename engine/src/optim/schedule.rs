//! The optimiser's settings (`OptimConfig`, part of every run's saved configuration) and the
//! learning-rate schedule: linear warm-up, then cosine decay. The schedule is a pure function of
//! the step, so a resumed run follows the same curve.

use serde::{Deserialize, Serialize};

/// Optimiser and schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// Peak learning rate, reached at the end of warm-up.
    pub peak_lr: f64,
    pub warmup_steps: usize,
    /// The learning rate decays along a cosine to `peak_lr × final_lr_fraction` at the last step.
    pub final_lr_fraction: f64,
    pub weight_decay: f32,
    /// Each parameter's gradient is clipped to this L2 norm (burn clips per tensor, not globally).
    pub grad_clip_norm: f32,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            peak_lr: 2e-3,
            warmup_steps: 200,
            final_lr_fraction: 0.05,
            weight_decay: 1e-3,
            grad_clip_norm: 5.0,
        }
    }
}

impl OptimConfig {
    /// The warm-up of a `steps`-step run when none is asked for, on either front door: a tenth
    /// of the run, at least 1 and at most the default's 200 (so a run of 2,000 steps or more
    /// warms up for 200, and a short one still spends most of its steps near the peak rate).
    pub fn default_warmup(steps: usize) -> usize {
        (steps / 10).clamp(1, Self::default().warmup_steps)
    }
}

/// Learning rate for optimiser step `step` (0-based) of a `total_steps` run.
pub fn learning_rate(config: &OptimConfig, step: usize, total_steps: usize) -> f64 {
    let warmup = config.warmup_steps.min(total_steps.saturating_sub(1));
    if step < warmup {
        return config.peak_lr * (step + 1) as f64 / warmup as f64;
    }
    let decay_steps = (total_steps - warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / decay_steps).min(1.0);
    let floor = config.peak_lr * config.final_lr_fraction;
    floor + (config.peak_lr - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_to_the_peak_then_decays_to_the_floor() {
        let c = OptimConfig {
            peak_lr: 1e-3,
            warmup_steps: 10,
            final_lr_fraction: 0.1,
            ..OptimConfig::default()
        };
        assert!((learning_rate(&c, 0, 100) - 1e-4).abs() < 1e-12);
        assert!((learning_rate(&c, 9, 100) - 1e-3).abs() < 1e-12);
        assert!((learning_rate(&c, 10, 100) - 1e-3).abs() < 1e-12);
        let last = learning_rate(&c, 99, 100);
        assert!(last > 1e-4 && last < 1.01e-4, "{last}");
        let lrs: Vec<f64> = (10..100).map(|s| learning_rate(&c, s, 100)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]), "monotone decay after warm-up");
    }

    #[test]
    fn the_default_warmup_is_a_tenth_of_the_run_within_one_and_200() {
        assert_eq!(OptimConfig::default_warmup(0), 1);
        assert_eq!(OptimConfig::default_warmup(12), 1);
        assert_eq!(OptimConfig::default_warmup(600), 60);
        assert_eq!(OptimConfig::default_warmup(2_000), 200);
        assert_eq!(OptimConfig::default_warmup(150_000), 200);
    }
}
