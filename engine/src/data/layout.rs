//! The LibriSpeech directory layout: `<root>/<subset>/<speaker>/<chapter>/` holding
//! `<speaker>-<chapter>-<utt>.flac` files and one `<speaker>-<chapter>.trans.txt`.
//!
//! Scanning pairs audio with transcript lines and reports every mismatch by path instead of
//! stopping at the first, so a user can fix a whole corpus in one pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::CorpusIssue;
use crate::bounded_read::{limits, read_bounded};

/// An utterance found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutEntry {
    pub id: String,
    pub text: String,
    pub audio_path: PathBuf,
}

/// What a scan found: usable entries and the problems it skipped.
#[derive(Debug, Default)]
pub struct LayoutScan {
    pub entries: Vec<LayoutEntry>,
    pub issues: Vec<CorpusIssue>,
}

/// Scans `<root>/<subset>`; entries are sorted by id so every scan returns the same order.
pub fn scan_subset(root: &Path, subset: &str) -> Result<LayoutScan, CorpusIssue> {
    let dir = root.join(subset);
    let speakers =
        read_dir_sorted(&dir).map_err(|e| CorpusIssue::new(&dir, format!("cannot read subset directory: {e}")))?;
    let mut scan = LayoutScan::default();
    // Every entry below the subset should be a directory; anything that cannot be listed (a
    // stray file, a dangling link, no permission) is reported rather than silently passed over.
    for speaker_dir in speakers {
        let chapters = match read_dir_sorted(&speaker_dir) {
            Ok(c) => c,
            Err(e) => {
                scan.issues
                    .push(CorpusIssue::new(&speaker_dir, format!("cannot read directory: {e}")));
                continue;
            }
        };
        for chapter_dir in chapters {
            scan_chapter(&chapter_dir, &mut scan);
        }
    }
    scan.entries.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scan)
}

fn scan_chapter(chapter_dir: &Path, scan: &mut LayoutScan) {
    let files = match read_dir_sorted(chapter_dir) {
        Ok(f) => f,
        Err(e) => {
            scan.issues
                .push(CorpusIssue::new(chapter_dir, format!("cannot read directory: {e}")));
            return;
        }
    };
    let mut audio: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut transcripts: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some(id) = name.strip_suffix(".flac").or_else(|| name.strip_suffix(".wav")) {
            audio.insert(id.to_string(), path);
        } else if name.ends_with(".trans.txt") {
            read_transcript_file(&path, &mut transcripts, &mut scan.issues);
        }
    }
    for (id, path) in &audio {
        match transcripts.remove(id) {
            Some((text, _)) => scan.entries.push(LayoutEntry {
                id: id.clone(),
                text,
                audio_path: path.clone(),
            }),
            None => scan
                .issues
                .push(CorpusIssue::new(path, "audio file has no transcript line".to_string())),
        }
    }
    for (id, (_, trans_path)) in transcripts {
        scan.issues.push(CorpusIssue::new(
            &trans_path,
            format!("transcript line {id} has no audio file"),
        ));
    }
}

fn read_transcript_file(path: &Path, out: &mut BTreeMap<String, (String, PathBuf)>, issues: &mut Vec<CorpusIssue>) {
    let bytes = match read_bounded(path, limits::TRANSCRIPTS, "transcript file") {
        Ok(bytes) => bytes,
        Err(e) => {
            return issues.push(CorpusIssue::new(path, format!("transcript: {}", e.problem)));
        }
    };
    let parsed = crate::text::parse_transcript_lines(&bytes);
    issues.extend(
        parsed
            .problems
            .iter()
            .map(|problem| CorpusIssue::new(path, problem.to_string())),
    );
    out.extend(
        parsed
            .lines
            .into_iter()
            .map(|line| (line.id, (line.text, path.to_path_buf()))),
    );
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(paths)
}

/// Writes one chapter's transcript file in LibriSpeech format.
pub fn write_transcript_file(path: &Path, lines: &[(String, String)]) -> std::io::Result<()> {
    let body: String = lines.iter().map(|(id, text)| format!("{id} {text}\n")).collect();
    std::fs::write(path, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_audio_with_transcripts_and_reports_mismatches() {
        let root = std::env::temp_dir().join(format!("prunelab-layout-{}", std::process::id()));
        let chapter = root.join("dev/7/1");
        std::fs::create_dir_all(&chapter).unwrap();
        std::fs::write(chapter.join("7-1-0000.flac"), b"x").unwrap();
        std::fs::write(chapter.join("7-1-0001.flac"), b"x").unwrap();
        write_transcript_file(
            &chapter.join("7-1.trans.txt"),
            &[
                ("7-1-0000".into(), "HELLO THERE".into()),
                ("7-1-0002".into(), "NO AUDIO".into()),
            ],
        )
        .unwrap();
        let scan = scan_subset(&root, "dev").unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(scan.entries.len(), 1);
        assert_eq!(scan.entries[0].text, "HELLO THERE");
        let messages: Vec<String> = scan.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("7-1-0001.flac") && m.contains("no transcript"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("7-1.trans.txt") && m.contains("7-1-0002 has no audio"))
        );
    }

    #[test]
    fn a_line_that_is_not_utf8_loses_only_itself() {
        let root = std::env::temp_dir().join(format!("prunelab-layout-utf8-{}", std::process::id()));
        let chapter = root.join("dev/7/1");
        std::fs::create_dir_all(&chapter).unwrap();
        for utt in ["0001", "0002"] {
            std::fs::write(chapter.join(format!("7-1-{utt}.flac")), b"fLaC").unwrap();
        }
        std::fs::write(
            chapter.join("7-1.trans.txt"),
            b"7-1-0001 GOOD LINE\n7-1-0002 BAD \xff\xfe\n",
        )
        .unwrap();
        let scan = scan_subset(&root, "dev").unwrap();
        let ids: Vec<&str> = scan.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["7-1-0001"]);
        let problems: Vec<String> = scan.issues.iter().map(|i| i.to_string()).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("7-1.trans.txt") && p.contains("line 2 is not UTF-8")),
            "{problems:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn missing_subset_is_an_error_naming_it() {
        let err = scan_subset(Path::new("/nonexistent-prunelab"), "train").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-prunelab/train"), "{err}");
    }
}
