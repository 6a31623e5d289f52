//! Transcript files as the field writes them: one `<utt-id> WORDS…` line per utterance
//! (LibriSpeech's `.trans.txt`, Kaldi's `text`, hypothesis files). Parsing is shared by the
//! corpus scanner and `prunelab wer`, and every line problem names its line.

use unicode_normalization::UnicodeNormalization;

/// The longest transcript accepted, in characters. Scoring aligns characters in time
/// quadratic in the length; a line this long already costs seconds, and utterances are
/// sentences, not documents.
pub const MAX_TRANSCRIPT_CHARS: usize = 32_768;

/// One utterance's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// 1-based line number in the file.
    pub line: usize,
    pub id: String,
    /// The text after the id, trimmed, not normalised.
    pub text: String,
}

/// A line that cannot be used, by its 1-based number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscriptLineError {
    #[error("line {line} is not UTF-8 text")]
    NotUtf8 { line: usize },
    #[error("line {line} starts with whitespace, so it has no utterance id (its first word would be taken for one)")]
    NoId { line: usize },
    #[error("line {line}: utterance id {id} appears twice (first on line {first})")]
    DuplicateId { line: usize, id: String, first: usize },
    #[error(
        "line {line}: utterance {id} is {chars} characters long; transcripts over {MAX_TRANSCRIPT_CHARS} are refused (scoring aligns sentences, not documents)"
    )]
    TooLong { line: usize, id: String, chars: usize },
}

/// The usable lines of a transcript file and the problems of the others: a bad line costs
/// only itself (a corpus keeps the rest of its chapter; `prunelab wer` refuses the file).
#[derive(Debug, Default)]
pub struct ParsedTranscripts {
    pub lines: Vec<TranscriptLine>,
    pub problems: Vec<TranscriptLineError>,
}

/// Parses every non-blank line of `bytes` as `<id> <text>`, split at the first whitespace (the
/// text may be empty: a hypothesis of silence). A byte-order mark before the first line is
/// dropped, and ids and text are put in Unicode's composed form (NFC), so that "é" typed as one
/// character or as "e" and an accent is one word. Lines that are not UTF-8, have no id (they
/// start with whitespace), repeat an earlier id or run over [`MAX_TRANSCRIPT_CHARS`] are left
/// out and listed, by their number in the file.
pub fn parse_transcript_lines(bytes: &[u8]) -> ParsedTranscripts {
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let mut first_line_of = std::collections::HashMap::new();
    let mut parsed = ParsedTranscripts::default();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let Ok(text) = std::str::from_utf8(raw) else {
            parsed.problems.push(TranscriptLineError::NotUtf8 { line });
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        if text.starts_with(char::is_whitespace) {
            parsed.problems.push(TranscriptLineError::NoId { line });
            continue;
        }
        let composed: String = text.trim_end().nfc().collect();
        let (id, text) = composed.split_once(char::is_whitespace).unwrap_or((&composed, ""));
        let chars = text.chars().count();
        if chars > MAX_TRANSCRIPT_CHARS {
            let id = id.to_string();
            parsed.problems.push(TranscriptLineError::TooLong { line, id, chars });
            continue;
        }
        if let Some(&first) = first_line_of.get(id) {
            let id = id.to_string();
            parsed
                .problems
                .push(TranscriptLineError::DuplicateId { line, id, first });
            continue;
        }
        first_line_of.insert(id.to_string(), line);
        parsed.lines.push(TranscriptLine {
            line,
            id: id.to_string(),
            text: text.trim().to_string(),
        });
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_id_and_text_and_problems_name_their_line() {
        let bytes = "\u{feff}a-1 HELLO  WORLD\r\n\na-2\nb-3\tTAB TEXT \nc-4 Caf\u{65}\u{301} \u{e9}t\u{e9}\n";
        let parsed = parse_transcript_lines(bytes.as_bytes());
        let pairs: Vec<(usize, &str, &str)> = parsed
            .lines
            .iter()
            .map(|l| (l.line, l.id.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (1, "a-1", "HELLO  WORLD"),
                (3, "a-2", ""),
                (4, "b-3", "TAB TEXT"),
                // The decomposed "e" + accent composed into the one character the second word has.
                (5, "c-4", "Caf\u{e9} \u{e9}t\u{e9}"),
            ]
        );
        assert!(
            parsed.problems.is_empty(),
            "the byte-order mark is not part of the first id"
        );
    }

    /// Each bad line is reported by its own number and costs only itself.
    #[test]
    fn bad_lines_are_listed_by_number_and_the_rest_kept() {
        let long = format!("z {}", "A".repeat(MAX_TRANSCRIPT_CHARS + 1));
        let bytes = [
            b"x ONE\nbad \xff\xfe\ny TWO\nx THREE\n".as_slice(),
            long.as_bytes(),
            b"\nw FOUR\n THE CAT",
        ]
        .concat();
        let parsed = parse_transcript_lines(&bytes);
        let ids: Vec<&str> = parsed.lines.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["x", "y", "w"]);
        let problems: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems[0], "line 2 is not UTF-8 text");
        assert_eq!(problems[1], "line 4: utterance id x appears twice (first on line 1)");
        assert!(
            problems[2].starts_with("line 5: utterance z is 32769 characters long"),
            "{}",
            problems[2]
        );
        assert_eq!(parsed.lines[2].line, 6);
        assert_eq!(
            problems[3],
            "line 7 starts with whitespace, so it has no utterance id (its first word would be taken for one)"
        );
    }
}
