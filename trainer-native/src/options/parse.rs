//! Parsers of the values several subcommands take: presets, methods and sites by name.

use prunelab_engine::gates::{Method, SiteKind};
use prunelab_engine::model::Preset;

pub fn parse_method(name: &str) -> Result<Method, String> {
    Method::parse(name)
        .ok_or_else(|| format!("unknown method {name:?}; choose none, adaptive-dropout, l0 or magnitude"))
}

pub fn parse_site(name: &str) -> Result<SiteKind, String> {
    SiteKind::parse(name).ok_or_else(|| {
        format!("unknown site {name:?}; choose from ffn1.hidden, attn.query, attn.value, conv.input, ffn2.hidden")
    })
}

pub fn parse_preset(name: &str) -> Result<Preset, String> {
    Preset::parse(name).ok_or_else(|| format!("unknown preset {name:?}; choose tiny, small or medium"))
}

/// A count that must be at least 1 (batch sizes, repeats, steps, workers): zero would divide
/// by zero or measure nothing.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("not a whole number".into()),
    }
}

/// A count from `LOW` to `HIGH`: for sizes whose huge values would exhaust memory or never
/// end (repeats, batch sizes, copies), as well as zero.
pub fn between<const LOW: usize, const HIGH: usize>(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (LOW..=HIGH).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be from {LOW} to {HIGH}")),
        Err(_) => Err("not a whole number".into()),
    }
}

/// Seconds above zero and at most `MAX`.
pub fn seconds_up_to<const MAX: u32>(text: &str) -> Result<f64, String> {
    positive_seconds(text).and_then(|v| {
        if v <= f64::from(MAX) {
            Ok(v)
        } else {
            Err(format!("must be at most {MAX} seconds"))
        }
    })
}

/// A duration or size in seconds: finite and above zero.
pub fn positive_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("must be a finite number of seconds above 0".into()),
        Err(_) => Err("not a number".into()),
    }
}

/// Any finite number (thresholds, which the plan then checks against the method's range).
pub fn finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("must be a finite number".into()),
        Err(_) => Err("not a number".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_non_finite_sizes_are_refused() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err() && at_least_one("-1").is_err());
        assert_eq!(positive_seconds("2.5"), Ok(2.5));
        for bad in ["0", "-1", "inf", "NaN", "x"] {
            assert!(positive_seconds(bad).is_err(), "{bad}");
        }
        assert!(finite("nan").is_err() && finite("0.5").is_ok());
        assert_eq!(between::<1, 1000>("1000"), Ok(1000));
        assert!(between::<1, 1000>("1001").is_err() && between::<1, 1000>("18446744073709551615").is_err());
        assert!(seconds_up_to::<600>("601").is_err() && seconds_up_to::<600>("600").is_ok());
    }
}
