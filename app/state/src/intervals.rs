//! A cut's dev WER against the start's, as `prunelab compare` reports it: the difference in
//! points with its paired-bootstrap 95 % interval, from the engine's bootstrap (1,000 resamples
//! of the dev utterances, seed 0), both models scored on the same utterances.

use prunelab_engine::stats::{Bootstrap, BootstrapConfig, PairedDifference, UtteranceErrors};
use prunelab_engine::text::score_words;

/// Per dev utterance: id, reference, hypothesis (`PrunePoint::transcripts`).
pub type Transcripts = [(String, String, String)];

/// `cut`'s WER minus `start`'s, in points, with its interval; an error when the two were not
/// scored on the same utterances in the same order.
pub fn change_from_start(start: &Transcripts, cut: &Transcripts) -> Result<PairedDifference, String> {
    let same_utterances = start.len() == cut.len() && start.iter().zip(cut).all(|(a, b)| a.0 == b.0 && a.1 == b.1);
    if !same_utterances {
        return Err("the cut and the start were not scored on the same utterances".into());
    }
    let errors = |scored: &Transcripts| -> Vec<UtteranceErrors> {
        scored
            .iter()
            .map(|(_, reference, hypothesis)| UtteranceErrors::from(&score_words(reference, hypothesis)))
            .collect()
    };
    Bootstrap::new(BootstrapConfig::default(), start.len())
        .and_then(|bootstrap| bootstrap.paired_difference(&errors(start), &errors(cut)))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scored(hypotheses: &[&str]) -> Vec<(String, String, String)> {
        hypotheses
            .iter()
            .enumerate()
            .map(|(i, h)| (format!("u{i}"), "THE CAT SAT ON THE MAT".to_string(), h.to_string()))
            .collect()
    }

    #[test]
    fn the_change_is_the_difference_in_wer_with_an_interval_around_it() {
        let start = scored(&["THE CAT SAT ON THE MAT"; 20]);
        let mut worse = vec!["THE CAT SAT ON THE MAT"; 20];
        // Two of twenty utterances lose one word of six: 2 errors in 120 words, 1.67 points.
        worse[3] = "THE CAT SAT ON MAT";
        worse[11] = "THE BAT SAT ON THE MAT";
        let change = change_from_start(&start, &scored(&worse)).unwrap();
        assert!((change.difference - 200.0 / 120.0).abs() < 1e-9, "{change:?}");
        assert!(
            change.interval.low >= 0.0 && change.interval.low < change.difference,
            "{change:?}"
        );
        assert!(change.interval.high > change.difference, "{change:?}");
        // The same transcripts change nothing, with no width.
        let same = change_from_start(&start, &start).unwrap();
        assert_eq!(
            (same.difference, same.interval.low, same.interval.high),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn different_utterances_are_refused() {
        let start = scored(&["THE CAT"; 3]);
        assert!(change_from_start(&start, &start[..2]).is_err());
        let mut other = start.clone();
        other[1].0 = "elsewhere".into();
        assert!(change_from_start(&start, &other).is_err());
    }
}
