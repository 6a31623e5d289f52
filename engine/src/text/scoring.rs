//! What a scorer does to text before counting word errors, for transcripts a person brings
//! (`prunelab wer`). By default nothing: tokens are scored as written, as sclite does, so that
//! digits, every script and every mark count. Case folding and punctuation removal are choices
//! the reader makes and the report states; they drop no letters or digits of any script.
//!
//! The model's own transcripts follow the LibriSpeech convention instead (`normalize`), which
//! is what its alphabet can write.

use serde::{Deserialize, Serialize};
use unicode_general_category::{GeneralCategory, get_general_category};

/// Optional text transformations before scoring; the default scores text as written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoringRules {
    /// Lower-case both sides (Unicode's full lower-case mapping).
    pub fold_case: bool,
    /// Remove every character of Unicode's punctuation categories (P*: "." "," "¿" "«" "—" "'"
    /// and the like) where it stands, so "co-op" becomes "coop" and a lone "—" no word.
    /// Symbols (S*: "$" "+" "€") stay, as do letters, digits and combining marks.
    pub strip_punctuation: bool,
}

impl ScoringRules {
    /// `text` as the scorer compares it: transformed, then words separated by single spaces.
    pub fn apply(&self, text: &str) -> String {
        let stripped: String = if self.strip_punctuation {
            text.chars().filter(|&c| !is_punctuation(c)).collect()
        } else {
            text.to_string()
        };
        let folded = if self.fold_case {
            stripped.to_lowercase()
        } else {
            stripped
        };
        folded.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// For reports: what was done to the text.
    pub fn describe(&self) -> &'static str {
        match (self.fold_case, self.strip_punctuation) {
            (false, false) => "tokens as written (case and punctuation kept)",
            (true, false) => "case folded; punctuation kept",
            (false, true) => "punctuation removed; case kept",
            (true, true) => "case folded, punctuation removed",
        }
    }
}

fn is_punctuation(c: char) -> bool {
    use GeneralCategory::*;
    matches!(
        get_general_category(c),
        ConnectorPunctuation
            | DashPunctuation
            | OpenPunctuation
            | ClosePunctuation
            | InitialPunctuation
            | FinalPunctuation
            | OtherPunctuation
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_every_token_counts_as_written() {
        let text = "u1  w17 W72\tМосква 東京 ٣٤ Café, ok?";
        assert_eq!(
            ScoringRules::default().apply(text),
            "u1 w17 W72 Москва 東京 ٣٤ Café, ok?"
        );
    }

    #[test]
    fn folding_and_stripping_keep_letters_and_digits_of_every_script() {
        let both = ScoringRules {
            fold_case: true,
            strip_punctuation: true,
        };
        assert_eq!(
            both.apply("¿Qué? «ΣΟΦΟΣ» co-op — IT'S 10:30 $5 Москва"),
            "qué σοφο\u{3c2} coop its 1030 $5 москва"
        );
        let punctuation_only = ScoringRules {
            strip_punctuation: true,
            ..ScoringRules::default()
        };
        assert_eq!(punctuation_only.apply("A.B. Smith"), "AB Smith");
    }
}
