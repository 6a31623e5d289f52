//! `prunelab corpus fixture`: the built-in corpus written out as a LibriSpeech tree
//! (`train-clean-100/`, `dev-clean/`, `test-clean/` by default), for tests, demos and the
//! data-pipeline benchmark. `--copies` repeats every utterance under new chapter ids (hard links,
//! so 100k entries cost directory entries, not audio).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use prunelab_engine::data::{CorpusPack, SPLITS, write_transcript_file};

/// What to write.
pub struct FixturePlan {
    /// Directory names for the pack's train, dev and test splits.
    pub subsets: [String; 3],
    /// At most this many utterances per split (in id order); `None`: all.
    pub per_split: Option<usize>,
    /// Copies of every utterance (1: just the original).
    pub copies: usize,
}

/// Writes the fixture under `out`; returns the number of utterances written.
pub fn write_fixture(pack: &CorpusPack<'_>, out: &Path, plan: &FixturePlan) -> Result<usize, String> {
    let mut written = 0;
    for (split, subset) in SPLITS.iter().zip(&plan.subsets) {
        let mut entries: Vec<_> = pack.split(split).collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries.truncate(plan.per_split.unwrap_or(usize::MAX));
        // Transcript lines grouped by chapter directory, written once each at the end.
        let mut chapters: BTreeMap<PathBuf, Vec<(String, String)>> = BTreeMap::new();
        for entry in entries {
            let (speaker, chapter, utt) = split_id(&entry.id)?;
            let mut first_copy: Option<PathBuf> = None;
            for copy in 0..plan.copies.max(1) {
                // Copy c of chapter 7 lives in chapter 7c (c ≥ 1), so ids stay unique and well formed.
                let chapter = if copy == 0 {
                    chapter.to_string()
                } else {
                    format!("{chapter}{copy}")
                };
                let dir = out.join(subset).join(speaker).join(&chapter);
                std::fs::create_dir_all(&dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
                let id = format!("{speaker}-{chapter}-{utt}");
                let path = dir.join(format!("{id}.flac"));
                let linked = first_copy
                    .as_ref()
                    .is_some_and(|src| std::fs::hard_link(src, &path).is_ok());
                if !linked {
                    std::fs::write(&path, pack.audio(entry))
                        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
                }
                first_copy.get_or_insert(path);
                let trans = dir.join(format!("{speaker}-{chapter}.trans.txt"));
                chapters.entry(trans).or_default().push((id, entry.text.clone()));
                written += 1;
            }
        }
        for (path, lines) in chapters {
            write_transcript_file(&path, &lines).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
    }
    Ok(written)
}

/// `<speaker>-<chapter>-<utt>` into its three parts.
fn split_id(id: &str) -> Result<(&str, &str, &str), String> {
    let mut parts = id.splitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(c), Some(u)) if !s.is_empty() && !c.is_empty() && !u.is_empty() => Ok((s, c, u)),
        _ => Err(format!("pack entry {id:?} is not a <speaker>-<chapter>-<utt> id")),
    }
}
