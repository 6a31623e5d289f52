//! The allowed range of every number a person sets, declared once: configs validate with
//! these, the CLI parses its flags with them, and the lab checks its URL keys against them, so
//! the three can never disagree about what is in range.

use std::fmt;

/// A configuration value out of range, or inconsistent with another; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Where a bound sits, and whether the bound itself is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    Closed(f64),
    Open(f64),
    None,
}

/// The allowed values of one knob.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// The knob's name in messages (the config field, e.g. `peak_lr`).
    pub name: &'static str,
    pub low: Bound,
    pub high: Bound,
}

impl Limit {
    pub const fn new(name: &'static str, low: Bound, high: Bound) -> Self {
        Self { name, low, high }
    }

    pub fn contains(&self, value: f64) -> bool {
        let above = match self.low {
            Bound::Closed(b) => value >= b,
            Bound::Open(b) => value > b,
            Bound::None => value.is_finite(),
        };
        let below = match self.high {
            Bound::Closed(b) => value <= b,
            Bound::Open(b) => value < b,
            Bound::None => value.is_finite(),
        };
        above && below
    }

    /// `value` when it is in range, otherwise an error naming the knob and the range.
    pub fn check(&self, value: f64) -> Result<f64, ConfigError> {
        if self.contains(value) {
            Ok(value)
        } else {
            Err(ConfigError(format!("{} {value} must be {self}", self.name)))
        }
    }

    /// [`check`](Self::check) for a count, which the message echoes exactly: as an `f64`,
    /// 18446744073709551615 would be echoed as 18446744073709552000.
    pub fn check_count(&self, value: usize) -> Result<usize, ConfigError> {
        if self.contains(value as f64) {
            Ok(value)
        } else {
            Err(ConfigError(format!("{} {value} must be {self}", self.name)))
        }
    }
}

impl fmt::Display for Limit {
    /// "in [0, 1)", "at least 1", "positive".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.low, self.high) {
            (Bound::Open(lo), Bound::None) if lo == 0.0 => write!(f, "a finite number > 0"),
            (Bound::Closed(lo), Bound::None) => write!(f, "a finite number ≥ {lo}"),
            (Bound::Open(lo), Bound::None) => write!(f, "a finite number > {lo}"),
            (low, high) => {
                let (open, lo) = match low {
                    Bound::Closed(b) => ('[', b.to_string()),
                    Bound::Open(b) => ('(', b.to_string()),
                    Bound::None => ('(', "−∞".into()),
                };
                let (close, hi) = match high {
                    Bound::Closed(b) => (']', b.to_string()),
                    Bound::Open(b) => (')', b.to_string()),
                    Bound::None => (')', "∞".into()),
                };
                write!(f, "in {open}{lo}, {hi}{close}")
            }
        }
    }
}

/// The first failed check of a list, as an error (for checks that are not a single range).
pub fn first_failure(checks: impl IntoIterator<Item = (bool, String)>) -> Result<(), ConfigError> {
    checks
        .into_iter()
        .find(|(ok, _)| !ok)
        .map_or(Ok(()), |(_, message)| Err(ConfigError(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_as_declared_and_named_in_the_error() {
        let half_open = Limit::new("target_sparsity", Bound::Closed(0.0), Bound::Open(1.0));
        assert!(half_open.contains(0.0) && half_open.contains(0.99));
        assert!(!half_open.contains(1.0) && !half_open.contains(f64::NAN));
        assert_eq!(
            half_open.check(1.0).unwrap_err().to_string(),
            "target_sparsity 1 must be in [0, 1)"
        );
        let positive = Limit::new("temperature", Bound::Open(0.0), Bound::None);
        assert!(!positive.contains(0.0) && !positive.contains(f64::INFINITY));
        assert_eq!(positive.to_string(), "a finite number > 0");
        let steps = Limit::new("steps", Bound::Closed(1.0), Bound::Closed(1e9));
        assert_eq!(steps.check_count(600), Ok(600));
        assert_eq!(
            steps.check_count(usize::MAX).unwrap_err().to_string(),
            format!("steps {} must be in [1, 1000000000]", usize::MAX)
        );
    }
}
