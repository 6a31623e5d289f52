//! Paired bootstrap over utterances: confidence intervals for a word error rate and for the
//! difference between two systems scored on the same utterances (Koehn 2004, "Statistical
//! significance tests for machine translation evaluation"; Bisani & Ney 2004, "Bootstrap
//! estimates for confidence intervals in ASR performance evaluation").
//!
//! A WER is a ratio of sums (errors over reference words), so a resample draws whole utterances
//! with replacement and recomputes the ratio; averaging per-utterance rates would weight a
//! two-word utterance like a twelve-word one. "Paired" means every system is resampled with
//! the same draws, so a difference is measured on the same utterances each time and the
//! variation between utterances (some are simply hard) cancels out of it.
//!
//! The draws are reproducible from the seed: `SplitMix64::new(seed)`, then for each resample
//! `r` in order, `n` draws of `below(n)`. An independent implementation (the Python test)
//! regenerates them from that sentence alone.

use serde::{Deserialize, Serialize};

use super::spread::percentile;
use crate::rng::SplitMix64;
use crate::text::EditCounts;

/// One utterance's word errors (substitutions + deletions + insertions) and reference words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtteranceErrors {
    pub errors: usize,
    pub words: usize,
}

impl From<&EditCounts> for UtteranceErrors {
    fn from(counts: &EditCounts) -> Self {
        Self {
            errors: counts.errors(),
            words: counts.reference_len,
        }
    }
}

/// How to resample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BootstrapConfig {
    /// Number of resamples. 1000 puts the 2.5 % and 97.5 % points between the 25th/26th and
    /// 975th/976th values, enough for a two-decimal interval.
    pub resamples: usize,
    pub seed: u64,
    /// Coverage of the interval (0.95: from the 2.5th to the 97.5th percentile).
    pub confidence: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            resamples: 1000,
            seed: 0,
            confidence: 0.95,
        }
    }
}

/// Why a bootstrap cannot be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BootstrapError {
    #[error("a bootstrap needs at least one utterance")]
    NoUtterances,
    #[error("a bootstrap needs at least one resample (got {0})")]
    NoResamples(usize),
    #[error("confidence {0} is outside (0, 1)")]
    Confidence(f64),
    #[error("{given} utterances were scored, but the bootstrap was drawn over {expected}")]
    LengthMismatch { expected: usize, given: usize },
    #[error(
        "utterance {index} has {baseline} reference words for one system and {system} for the other: \
         a paired comparison needs the same references"
    )]
    DifferentReferences {
        index: usize,
        baseline: usize,
        system: usize,
    },
}

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// A system's corpus WER with its bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WerEstimate {
    /// WER in percent on the utterances as scored (not a bootstrap mean).
    pub wer: f64,
    pub interval: Interval,
    pub utterances: usize,
    pub words: usize,
    pub errors: usize,
}

/// System minus baseline, in WER points, over the same resamples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PairedDifference {
    /// Difference on the utterances as scored (positive: the system makes more errors).
    pub difference: f64,
    pub interval: Interval,
    /// Share of resamples in which the system's WER is above the baseline's (ties count as
    /// not worse). Near 1 the system is reliably worse; near 0, reliably not worse.
    pub worse_fraction: f64,
}

/// The resample draws over `n` utterances, shared by every system scored on them. They are
/// regenerated from the seed whenever a system is scored rather than held: held, they took
/// `resamples × utterances × 4` bytes (16 GB for 100,000 resamples of 40,000 utterances).
pub struct Bootstrap {
    config: BootstrapConfig,
    utterances: usize,
}

impl Bootstrap {
    pub fn new(config: BootstrapConfig, utterances: usize) -> Result<Self, BootstrapError> {
        if utterances == 0 {
            return Err(BootstrapError::NoUtterances);
        }
        if config.resamples == 0 {
            return Err(BootstrapError::NoResamples(config.resamples));
        }
        if !(config.confidence > 0.0 && config.confidence < 1.0) {
            return Err(BootstrapError::Confidence(config.confidence));
        }
        Ok(Self { config, utterances })
    }

    pub fn config(&self) -> &BootstrapConfig {
        &self.config
    }

    /// The utterance indices of every resample, in order, drawn afresh from the seed.
    pub fn resamples(&self) -> impl Iterator<Item = Vec<usize>> + '_ {
        let mut rng = SplitMix64::new(self.config.seed);
        (0..self.config.resamples).map(move |_| (0..self.utterances).map(|_| rng.below(self.utterances)).collect())
    }

    /// The system's WER in each resample, in resample order.
    pub fn resampled_wers(&self, system: &[UtteranceErrors]) -> Result<Vec<f64>, BootstrapError> {
        self.check_length(system)?;
        let mut rng = SplitMix64::new(self.config.seed);
        Ok((0..self.config.resamples)
            .map(|_| {
                let (errors, words) = (0..self.utterances).fold((0, 0), |(e, w), _| {
                    let i = rng.below(self.utterances);
                    (e + system[i].errors, w + system[i].words)
                });
                wer_percent(errors, words)
            })
            .collect())
    }

    /// The system's WER and its percentile interval.
    pub fn estimate(&self, system: &[UtteranceErrors]) -> Result<WerEstimate, BootstrapError> {
        let resampled = self.resampled_wers(system)?;
        let errors = system.iter().map(|u| u.errors).sum();
        let words = system.iter().map(|u| u.words).sum();
        Ok(WerEstimate {
            wer: corpus_wer(system),
            interval: self.interval(resampled),
            utterances: system.len(),
            words,
            errors,
        })
    }

    /// `system − baseline` with its interval, both resampled with the same draws.
    pub fn paired_difference(
        &self,
        baseline: &[UtteranceErrors],
        system: &[UtteranceErrors],
    ) -> Result<PairedDifference, BootstrapError> {
        self.check_length(baseline)?;
        self.check_length(system)?;
        if let Some(index) = (0..system.len()).find(|&i| baseline[i].words != system[i].words) {
            return Err(BootstrapError::DifferentReferences {
                index,
                baseline: baseline[index].words,
                system: system[index].words,
            });
        }
        let base = self.resampled_wers(baseline)?;
        let sys = self.resampled_wers(system)?;
        let differences: Vec<f64> = sys.iter().zip(&base).map(|(s, b)| s - b).collect();
        let worse = differences.iter().filter(|d| **d > 0.0).count();
        Ok(PairedDifference {
            difference: corpus_wer(system) - corpus_wer(baseline),
            interval: self.interval(differences),
            worse_fraction: worse as f64 / self.config.resamples as f64,
        })
    }

    /// The central `confidence` interval of resampled values (percentile method).
    fn interval(&self, mut values: Vec<f64>) -> Interval {
        values.sort_by(f64::total_cmp);
        let tail = (1.0 - self.config.confidence) / 2.0;
        let at = |q| percentile(&values, q).unwrap_or_else(|| unreachable!("at least one resample"));
        Interval {
            low: at(tail),
            high: at(1.0 - tail),
        }
    }

    fn check_length(&self, system: &[UtteranceErrors]) -> Result<(), BootstrapError> {
        if system.len() == self.utterances {
            Ok(())
        } else {
            Err(BootstrapError::LengthMismatch {
                expected: self.utterances,
                given: system.len(),
            })
        }
    }
}

/// The WER of `utterances` as scored: total errors over total reference words, in percent.
pub fn corpus_wer(utterances: &[UtteranceErrors]) -> f64 {
    wer_percent(
        utterances.iter().map(|u| u.errors).sum(),
        utterances.iter().map(|u| u.words).sum(),
    )
}

/// Errors over words in percent; with no reference words, 0 % without errors and 100 % with
/// some (as `EditCounts::rate_percent`: inserting words into silence is never free).
fn wer_percent(errors: usize, words: usize) -> f64 {
    match (words, errors) {
        (0, 0) => 0.0,
        (0, _) => 100.0,
        (w, e) => 100.0 * e as f64 / w as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utterances(pairs: &[(usize, usize)]) -> Vec<UtteranceErrors> {
        pairs
            .iter()
            .map(|&(errors, words)| UtteranceErrors { errors, words })
            .collect()
    }

    /// Forty utterances of 3–12 words with a varied number of errors.
    fn varied(offset: usize) -> Vec<UtteranceErrors> {
        (0..40)
            .map(|i| {
                let words = 3 + (i * 7) % 10;
                UtteranceErrors {
                    errors: ((i * 5 + offset) % 4).min(words),
                    words,
                }
            })
            .collect()
    }

    #[test]
    fn identical_systems_differ_by_exactly_zero() {
        let b = Bootstrap::new(BootstrapConfig::default(), 40).unwrap();
        let d = b.paired_difference(&varied(0), &varied(0)).unwrap();
        assert_eq!(d.difference, 0.0);
        assert_eq!(d.interval, Interval { low: 0.0, high: 0.0 });
        assert_eq!(d.worse_fraction, 0.0);
    }

    #[test]
    fn a_system_worse_on_every_utterance_is_worse_in_every_resample() {
        let b = Bootstrap::new(BootstrapConfig::default(), 40).unwrap();
        let base = varied(0);
        let worse: Vec<_> = base
            .iter()
            .map(|u| UtteranceErrors {
                errors: u.errors + 1,
                words: u.words,
            })
            .collect();
        let d = b.paired_difference(&base, &worse).unwrap();
        assert_eq!(d.worse_fraction, 1.0);
        assert!(d.interval.low > 0.0 && d.difference > 0.0);
        // And the other way round: never worse.
        assert_eq!(b.paired_difference(&worse, &base).unwrap().worse_fraction, 0.0);
    }

    #[test]
    fn the_interval_holds_the_wer_and_a_constant_rate_has_no_width() {
        let b = Bootstrap::new(BootstrapConfig::default(), 40).unwrap();
        let e = b.estimate(&varied(1)).unwrap();
        assert!(e.interval.low < e.wer && e.wer < e.interval.high, "{e:?}");
        // One error in every 4-word utterance: 25 % in any resample.
        let flat = utterances(&[(1, 4); 40]);
        let e = b.estimate(&flat).unwrap();
        assert_eq!((e.wer, e.interval.low, e.interval.high), (25.0, 25.0, 25.0));
    }

    #[test]
    fn more_utterances_give_a_narrower_interval() {
        let config = BootstrapConfig::default();
        let small = varied(2);
        let large: Vec<_> = (0..16).flat_map(|_| small.iter().copied()).collect();
        let narrow = Bootstrap::new(config, large.len()).unwrap().estimate(&large).unwrap();
        let wide = Bootstrap::new(config, small.len()).unwrap().estimate(&small).unwrap();
        // The standard error falls as 1/sqrt(n): 16× the utterances, about a quarter the width.
        let ratio = narrow.interval.width() / wide.interval.width();
        assert!((0.15..0.4).contains(&ratio), "width ratio {ratio}");
    }

    #[test]
    fn same_seed_same_draws_and_bad_input_is_refused() {
        let config = BootstrapConfig {
            resamples: 50,
            seed: 7,
            confidence: 0.9,
        };
        let (a, b) = (Bootstrap::new(config, 10).unwrap(), Bootstrap::new(config, 10).unwrap());
        assert_eq!(a.resamples().nth(49), b.resamples().nth(49));
        assert_eq!(a.resamples().count(), 50);
        assert!(a.resamples().nth(3).unwrap().iter().all(|&i| i < 10));
        assert_eq!(Bootstrap::new(config, 0).err(), Some(BootstrapError::NoUtterances));
        let no_resamples = BootstrapConfig { resamples: 0, ..config };
        assert!(Bootstrap::new(no_resamples, 3).is_err());
        let bad_confidence = BootstrapConfig {
            confidence: 1.0,
            ..config
        };
        assert_eq!(
            Bootstrap::new(bad_confidence, 3).err(),
            Some(BootstrapError::Confidence(1.0))
        );
        assert!(matches!(
            a.estimate(&varied(0)),
            Err(BootstrapError::LengthMismatch {
                expected: 10,
                given: 40
            })
        ));
        let (x, mut y) = (utterances(&[(1, 4); 10]), utterances(&[(1, 4); 10]));
        y[6].words = 5;
        assert!(matches!(
            a.paired_difference(&x, &y),
            Err(BootstrapError::DifferentReferences { index: 6, .. })
        ));
    }
}
