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

/// `text` normalised for training and scoring the model, or the first character that carries
/// meaning the model's alphabet (A–Z, apostrophe) cannot write: a digit, or a letter outside
/// A–Z ("3", "ü", "東"). Normalising would drop it, and the model would learn or be scored on a
/// sentence the audio does not say ("I HAVE 3 CATS" as "I HAVE CATS"); such a transcript is
/// refused by name instead. Punctuation and symbols go, as LibriSpeech's transcripts have none.
pub fn normalize_for_alphabet(text: &str) -> Result<String, char> {
    match text.chars().find(|c| c.is_alphanumeric() && !c.is_ascii_alphabetic()) {
        Some(c) => Err(c),
        None => Ok(normalize_transcript(text)),
    }
}

/// What a corpus says of a transcript [`normalize_for_alphabet`] refuses.
pub fn unwritable_character_problem(c: char) -> String {
    format!(
        "transcript has {c:?}, which the model's alphabet (A–Z and the apostrophe) cannot write; \
         spell it out (numbers as words, letters without accents)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_letters_outside_a_to_z_are_refused_not_dropped() {
        assert_eq!(
            normalize_for_alphabet("It's co-op, ok?").as_deref(),
            Ok("IT'S CO OP OK")
        );
        assert_eq!(normalize_for_alphabet("I have 3 cats"), Err('3'));
        assert_eq!(normalize_for_alphabet("in Zürich"), Err('ü'));
        assert_eq!(normalize_for_alphabet("东京 tower"), Err('东'));
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
