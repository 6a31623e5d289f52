//! Transcript normalisation to the LibriSpeech convention: upper case, letters, apostrophes
//! and single spaces, nothing else.

/// Upper-cases `text`, keeps `A–Z` and apostrophes, turns every other run of characters into
/// one space and trims the ends. Hyphens and punctuation separate words ("co-op" → "CO OP").
pub fn normalize_transcript(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.chars() {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c == '\'' {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out
}

/// The whitespace-separated tokens of `text` that normalisation deletes outright: numbers,
/// symbols, words in other scripts. Scoring never sees them, so tools that read transcripts
/// from users say which were dropped instead of scoring a shorter sentence in silence.
pub fn tokens_lost_in_normalisation(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .filter(|token| !token.chars().any(|c| c.is_ascii_alphabetic() || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_that_normalise_to_nothing_are_listed() {
        let lost: Vec<&str> = tokens_lost_in_normalisation("Meet at 10:30 — 東京 or Zürich, ok?").collect();
        assert_eq!(lost, vec!["10:30", "—", "東京"]);
        assert_eq!(tokens_lost_in_normalisation("IT'S FINE").count(), 0);
    }

    #[test]
    fn upper_cases_and_collapses_punctuation() {
        assert_eq!(
            normalize_transcript("  Hello,   world! It's co-op. "),
            "HELLO WORLD IT'S CO OP"
        );
    }

    #[test]
    fn empty_and_symbol_only_text_normalises_to_empty() {
        assert_eq!(normalize_transcript(""), "");
        assert_eq!(normalize_transcript(" ,.;! 123 "), "");
    }
}
