//! Character tokenizer for CTC: blank, space, apostrophe, A–Z.

/// Index of the CTC blank symbol (burn's CTC loss expects it at 0).
pub const BLANK: usize = 0;

/// Index of the word separator.
pub const SPACE: usize = 1;

/// Symbols after the blank, in id order.
const SYMBOLS: &[u8] = b" 'ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Maps normalised transcripts to token ids and back. Ids are `1..=28`; 0 is the blank.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CharTokenizer;

impl CharTokenizer {
    /// Number of output classes including the blank (29).
    pub fn vocab_size(&self) -> usize {
        SYMBOLS.len() + 1
    }

    /// Token ids of `text`, or the first character that has no token.
    /// `text` must already be normalised (see [`super::normalize_transcript`]).
    pub fn encode(&self, text: &str) -> Result<Vec<usize>, char> {
        text.chars()
            .map(|c| {
                let position = u8::try_from(c).ok().and_then(|b| SYMBOLS.iter().position(|&s| s == b));
                position.map(|p| p + 1).ok_or(c)
            })
            .collect()
    }

    /// Text of a sequence of token ids; the blank and unknown ids are skipped.
    pub fn decode(&self, ids: &[usize]) -> String {
        ids.iter()
            .filter(|&&id| id != BLANK && id <= SYMBOLS.len())
            .map(|&id| SYMBOLS[id - 1] as char)
            .collect()
    }

    /// The symbol of one id, for display (`'_'` for the blank).
    pub fn symbol(&self, id: usize) -> char {
        if id == BLANK {
            '_'
        } else {
            SYMBOLS.get(id - 1).map(|&b| b as char).unwrap_or('?')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_symbol() {
        let tokenizer = CharTokenizer;
        let text = "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG'S BACK";
        let ids = tokenizer.encode(text).unwrap();
        assert!(ids.iter().all(|&id| id != BLANK && id < tokenizer.vocab_size()));
        assert_eq!(tokenizer.decode(&ids), text);
        assert_eq!(tokenizer.vocab_size(), 29);
        assert_eq!(tokenizer.encode(" ").unwrap(), vec![SPACE]);
    }

    #[test]
    fn reports_the_first_unknown_character() {
        assert_eq!(CharTokenizer.encode("AB1C"), Err('1'));
        assert_eq!(CharTokenizer.encode("ab"), Err('a'));
    }
}
