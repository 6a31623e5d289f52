//! Transcript files as the field writes them: one `<utt-id> WORDS…` line per utterance
//! (LibriSpeech's `.trans.txt`, Kaldi's `text`, hypothesis files). Parsing is shared by the
//! corpus scanner and `prunelab wer`, and every line problem names its line.

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
    #[error("line {line}: utterance id {id} appears twice (first on line {first})")]
    DuplicateId { line: usize, id: String, first: usize },
    #[error(
        "line {line}: utterance {id} is {chars} characters long; transcripts over {MAX_TRANSCRIPT_CHARS} are refused (scoring aligns sentences, not documents)"
    )]
    TooLong { line: usize, id: String, chars: usize },
}

/// Parses every non-blank line of `content` as `<id> <text>` (the text may be empty: a
/// hypothesis of silence), refusing repeated ids and over-long lines.
pub fn parse_transcript_lines(content: &str) -> Result<Vec<TranscriptLine>, TranscriptLineError> {
    let mut first_line_of = std::collections::HashMap::new();
    let mut lines = Vec::new();
    for (index, raw) in content.lines().enumerate() {
        let (line, trimmed) = (index + 1, raw.trim());
        if trimmed.is_empty() {
            continue;
        }
        let (id, text) = trimmed.split_once(char::is_whitespace).unwrap_or((trimmed, ""));
        let chars = text.chars().count();
        if chars > MAX_TRANSCRIPT_CHARS {
            return Err(TranscriptLineError::TooLong {
                line,
                id: id.to_string(),
                chars,
            });
        }
        if let Some(&first) = first_line_of.get(id) {
            return Err(TranscriptLineError::DuplicateId {
                line,
                id: id.to_string(),
                first,
            });
        }
        first_line_of.insert(id, line);
        lines.push(TranscriptLine {
            line,
            id: id.to_string(),
            text: text.trim().to_string(),
        });
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_into_id_and_text_and_problems_name_their_line() {
        let parsed = parse_transcript_lines("a-1 HELLO  WORLD\n\n  a-2\nb-3\tTAB TEXT \n").unwrap();
        let pairs: Vec<(usize, &str, &str)> = parsed
            .iter()
            .map(|l| (l.line, l.id.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![(1, "a-1", "HELLO  WORLD"), (3, "a-2", ""), (4, "b-3", "TAB TEXT")]
        );
        assert_eq!(
            parse_transcript_lines("x ONE\ny TWO\nx THREE\n")
                .unwrap_err()
                .to_string(),
            "line 3: utterance id x appears twice (first on line 1)"
        );
        let long = format!("x {}", "A".repeat(MAX_TRANSCRIPT_CHARS + 1));
        assert!(matches!(
            parse_transcript_lines(&long).unwrap_err(),
            TranscriptLineError::TooLong { line: 1, .. }
        ));
    }
}
