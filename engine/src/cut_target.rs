//! The one grammar for what a cut must fit, as a person types it on either front door (the
//! command line's `--budget`, the lab's "Cut to") and as a run's config saves it: a parameter
//! count (`686000`), a share of the dense model kept (`50%`, or `0.5`), or a speed-up in FLOPs
//! per second of audio (`2x`). Turning a target into units to remove needs the model's scores:
//! see `prune::CutSource::selection_for`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Why typed text is not a cut target. Each message starts with the text, so a front door can
/// put its own name before it (`--budget 0 must be positive`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is not a target: give parameters (686000), a share kept (50% or 0.5) or a speed-up (2x)")]
    NotATarget(String),
    #[error("{0} must be positive")]
    NotPositive(String),
    #[error("{0}: a share kept must be between 0 and 100 %")]
    ShareOutOfRange(String),
    #[error("{0}: a speed-up must be above 1")]
    SpeedupTooSmall(String),
    #[error("{0}: a parameter count must be a whole number (a share kept is below 1)")]
    NotACount(String),
}

impl CutTarget {
    /// Reads `686000` (parameters), `50%` or `0.5` (share kept: a bare number below 1), or
    /// `2x` / `2×` (speed-up).
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
        // The ranges are `is_valid`'s; the errors say which form was out of its range.
        let in_range = |target: Self, out_of_range: fn(String) -> TargetError| {
            Some(target)
                .filter(Self::is_valid)
                .ok_or_else(|| out_of_range(text.to_string()))
        };
        if let Some(percent) = text.strip_suffix('%') {
            return in_range(Self::Share(number(percent)? / 100.0), TargetError::ShareOutOfRange);
        }
        if let Some(times) = text.strip_suffix(['x', '×']) {
            return in_range(Self::Speedup(number(times)?), TargetError::SpeedupTooSmall);
        }
        match number(text)? {
            value if value <= 0.0 => Err(TargetError::NotPositive(text.to_string())),
            share if share < 1.0 => Ok(Self::Share(share)),
            count if count.fract() == 0.0 && count <= usize::MAX as f64 => Ok(Self::Parameters(count as usize)),
            _ => Err(TargetError::NotACount(text.to_string())),
        }
    }

    /// Whether this is a target [`CutTarget::parse`] could have given (a config built in code
    /// may hold any).
    pub fn is_valid(&self) -> bool {
        match *self {
            Self::Parameters(n) => n >= 1,
            Self::Share(share) => share > 0.0 && share < 1.0,
            Self::Speedup(times) => times.is_finite() && times > 1.0,
        }
    }

    /// The number a run's config saved before targets had a grammar (`magnitude_budget`): the
    /// share kept below 1, else a count (a fraction dropped, as those runs read it).
    fn from_saved_number(value: f64) -> Result<Self, TargetError> {
        match value {
            v if !v.is_finite() || v <= 0.0 => Err(TargetError::NotPositive(v.to_string())),
            share if share < 1.0 => Ok(Self::Share(share)),
            count => Ok(Self::Parameters(count as usize)),
        }
    }
}

impl FromStr for CutTarget {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
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

/// Saved as a run's config wrote budgets before speed-ups existed (a count or a share as a
/// number, so older runs read the same), a speed-up as its text (`"2x"`).
impl Serialize for CutTarget {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Self::Parameters(n) => serializer.serialize_u64(n as u64),
            Self::Share(share) => serializer.serialize_f64(share),
            Self::Speedup(x) => serializer.serialize_str(&format!("{x}x")),
        }
    }
}

impl<'de> Deserialize<'de> for CutTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Saved {
            Number(f64),
            Text(String),
        }
        match Saved::deserialize(deserializer)? {
            Saved::Number(value) => Self::from_saved_number(value),
            Saved::Text(text) => Self::parse(&text),
        }
        .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_read_as_counts_shares_and_speedups_and_nonsense_is_refused() {
        assert_eq!(CutTarget::parse("686000"), Ok(CutTarget::Parameters(686_000)));
        assert_eq!(CutTarget::parse(" 50% "), Ok(CutTarget::Share(0.5)));
        assert_eq!(
            CutTarget::parse("0.5"),
            Ok(CutTarget::Share(0.5)),
            "a bare share, as --budget took it"
        );
        assert_eq!(CutTarget::parse("1"), Ok(CutTarget::Parameters(1)));
        assert_eq!(CutTarget::parse("2x"), Ok(CutTarget::Speedup(2.0)));
        assert_eq!(CutTarget::parse("1.5×"), Ok(CutTarget::Speedup(1.5)));
        for bad in [
            "", "half", "0%", "100%", "1x", "0.5x", "12.5", "0", "-3", "NaN%", "infx", "1e400",
        ] {
            assert!(CutTarget::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(CutTarget::parse("1x"), Err(TargetError::SpeedupTooSmall("1x".into())));
        assert_eq!(
            CutTarget::parse("100%"),
            Err(TargetError::ShareOutOfRange("100%".into()))
        );
        assert_eq!(CutTarget::parse("12.5"), Err(TargetError::NotACount("12.5".into())));
        // A count past what the machine counts in is refused as typed, never saturated (the lab
        // once echoed "Cut to 1e30" as 4294967295, wasm32's usize::MAX).
        assert_eq!(CutTarget::parse("1e30"), Err(TargetError::NotACount("1e30".into())));
        let zero = CutTarget::parse("0").unwrap_err().to_string();
        assert_eq!(format!("--budget {zero}"), "--budget 0 must be positive");
        let half = CutTarget::parse("half").unwrap_err().to_string();
        assert!(half.starts_with("\"half\" is not a target"), "{half}");
    }

    #[test]
    fn a_share_is_written_without_trailing_zeros() {
        assert_eq!(CutTarget::Share(0.5).to_string(), "50% of the parameters");
        assert_eq!(CutTarget::Share(1.0 / 3.0).to_string(), "33.3333% of the parameters");
        assert_eq!(CutTarget::Share(0.125).to_string(), "12.5% of the parameters");
    }

    #[test]
    fn a_saved_target_reads_back_and_budgets_saved_as_numbers_read_as_before() {
        for target in [
            CutTarget::Parameters(600),
            CutTarget::Share(0.6),
            CutTarget::Speedup(2.5),
        ] {
            let saved = serde_json::to_string(&target).unwrap();
            assert_eq!(serde_json::from_str::<CutTarget>(&saved).unwrap(), target, "{saved}");
        }
        assert_eq!(serde_json::to_string(&CutTarget::Share(0.6)).unwrap(), "0.6");
        assert_eq!(serde_json::to_string(&CutTarget::Speedup(2.0)).unwrap(), "\"2x\"");
        // What runs saved before: a count (as a float), a share, a count with a fraction.
        let old = |text| serde_json::from_str::<CutTarget>(text);
        assert_eq!(old("600.0").unwrap(), CutTarget::Parameters(600));
        assert_eq!(old("600.7").unwrap(), CutTarget::Parameters(600));
        assert_eq!(old("0.25").unwrap(), CutTarget::Share(0.25));
        let bad = old("-1").unwrap_err().to_string();
        assert!(bad.contains("-1 must be positive"), "{bad}");
        assert!(old("\"half\"").is_err());
    }
}
