//! An index of a LibriSpeech-layout corpus too large to hold as features: every utterance's
//! id, transcript, audio path and length (read from the file header), with every problem found
//! while building it reported by path.
//!
//! Indexing reads directory listings, transcripts and a few hundred header bytes per file, so
//! its memory grows with the number of entries (a few hundred bytes each), never with audio.

use std::path::{Path, PathBuf};

use super::{CorpusIssue, scan_subset};
use crate::audio::{SAMPLE_RATE, probe_audio_file};
use crate::text::{CharTokenizer, normalize_for_alphabet, unwritable_character_problem};

/// One usable utterance: checked transcript, readable header at 16 kHz mono.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    pub id: String,
    /// Normalised transcript.
    pub text: String,
    pub audio_path: PathBuf,
    /// Samples at 16 kHz, from the header.
    pub samples: u64,
}

/// The usable entries of some subsets (in subset order, each sorted by id) and what was skipped.
#[derive(Debug, Default)]
pub struct CorpusIndex {
    pub entries: Vec<IndexEntry>,
    pub skipped: Vec<CorpusIssue>,
    /// Usable entries per subset, in the order asked for.
    pub per_subset: Vec<(String, usize)>,
}

impl CorpusIndex {
    pub fn total_seconds(&self) -> f64 {
        self.entries.iter().map(|e| e.samples as f64).sum::<f64>() / f64::from(SAMPLE_RATE)
    }
}

/// Indexes `<root>/<subset>` for each subset. A missing subset directory is always an error;
/// other problems (orphan audio, transcript lines without audio, unreadable directories, empty
/// or untokenizable transcripts, bad headers, wrong sample rates) are skipped and listed, or the
/// first one is returned as the error when `strict`. `progress` is told the entries so far.
pub fn index_subsets(
    root: &Path,
    subsets: &[String],
    strict: bool,
    mut progress: impl FnMut(usize),
) -> Result<CorpusIndex, CorpusIssue> {
    let mut index = CorpusIndex::default();
    for subset in subsets {
        let scan = scan_subset(root, subset)?;
        let mut issues = scan.issues;
        let before = index.entries.len();
        for entry in scan.entries {
            match check_entry(&entry.audio_path, &entry.text) {
                Ok((text, samples)) => index.entries.push(IndexEntry {
                    id: entry.id,
                    text,
                    audio_path: entry.audio_path,
                    samples,
                }),
                Err(issue) => issues.push(issue),
            }
            if index.entries.len() % 1000 == 0 {
                progress(index.entries.len());
            }
        }
        if strict && let Some(first) = issues.first() {
            return Err(first.clone());
        }
        index.skipped.append(&mut issues);
        index.per_subset.push((subset.clone(), index.entries.len() - before));
    }
    progress(index.entries.len());
    Ok(index)
}

/// The longest utterance trained on or scored. LibriSpeech's longest is about 35 s; one of
/// 20 minutes needs tens of gigabytes for its attention scores.
pub const MAX_UTTERANCE_SECONDS: f64 = 120.0;

/// An utterance longer than [`MAX_UTTERANCE_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "{seconds:.0} s long; utterances over {MAX_UTTERANCE_SECONDS} s are skipped (attention's memory grows with the square of the length)"
)]
pub struct TooLong {
    pub seconds: f64,
}

/// Refuses an utterance of more than [`MAX_UTTERANCE_SECONDS`] (at 16 kHz), by its length.
pub fn check_utterance_length(samples: u64) -> Result<(), TooLong> {
    let seconds = samples as f64 / f64::from(SAMPLE_RATE);
    if seconds > MAX_UTTERANCE_SECONDS {
        return Err(TooLong { seconds });
    }
    Ok(())
}

fn check_entry(audio_path: &Path, raw_text: &str) -> Result<(String, u64), CorpusIssue> {
    let text =
        normalize_for_alphabet(raw_text).map_err(|c| CorpusIssue::new(audio_path, unwritable_character_problem(c)))?;
    if text.is_empty() {
        return Err(CorpusIssue::new(audio_path, "empty transcript".into()));
    }
    CharTokenizer
        .encode(&text)
        .map_err(|c| CorpusIssue::new(audio_path, format!("transcript has untokenizable character {c:?}")))?;
    let header = probe_audio_file(audio_path, SAMPLE_RATE).map_err(|e| CorpusIssue {
        location: e.source_name,
        problem: e.problem.to_string(),
    })?;
    check_utterance_length(header.samples).map_err(|problem| CorpusIssue::new(audio_path, problem.to_string()))?;
    Ok((text, header.samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_wav::wav_bytes;

    #[test]
    fn utterances_too_long_to_attend_over_are_skipped_by_name() {
        let root = std::env::temp_dir().join(format!("prunelab-index-long-{}", std::process::id()));
        let chapter = root.join("dev/7/1");
        std::fs::create_dir_all(&chapter).unwrap();
        std::fs::write(chapter.join("7-1-0001.wav"), wav_bytes(16_000, 1, 16_000)).unwrap();
        std::fs::write(chapter.join("7-1-0002.wav"), wav_bytes(16_000, 1, 121 * 16_000)).unwrap();
        std::fs::write(chapter.join("7-1.trans.txt"), "7-1-0001 SHORT\n7-1-0002 VERY LONG\n").unwrap();
        let index = index_subsets(&root, &["dev".to_string()], false, |_| {}).unwrap();
        assert_eq!(index.entries.len(), 1);
        let issue = index.skipped[0].to_string();
        assert!(
            issue.contains("7-1-0002.wav") && issue.contains("121 s long; utterances over 120 s are skipped"),
            "{issue}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
