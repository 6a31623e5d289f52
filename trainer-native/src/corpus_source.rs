//! Where training and evaluation data come from: the built-in pack (default) or a directory in
//! the LibriSpeech layout.

use std::path::{Path, PathBuf};

use prunelab_engine::data::{CorpusPack, LoadOptions, LoadedSplit, load_layout_subset, load_pack_split, scan_subset};
use prunelab_engine::text::normalize_transcript;

/// The packed built-in corpus shipped in `static/`.
pub fn default_pack_path() -> PathBuf {
    match std::env::var_os("PRUNELAB_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../static/corpus.plc"),
    }
}

/// A corpus to read splits from.
pub enum CorpusSource {
    Pack { path: PathBuf, bytes: Vec<u8> },
    Layout { root: PathBuf },
}

impl CorpusSource {
    /// A `.plc` file is a pack; a directory is a LibriSpeech-layout tree.
    pub fn open(path: &Path) -> Result<Self, String> {
        if path.is_dir() {
            return Ok(Self::Layout {
                root: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read corpus: {e}", path.display()))?;
        // Parse once up front so a bad pack fails before any work starts.
        CorpusPack::parse(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
        Ok(Self::Pack {
            path: path.to_path_buf(),
            bytes,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Pack { path, .. } => path.display().to_string(),
            Self::Layout { root } => root.display().to_string(),
        }
    }

    /// Decodes and featurises one split, reporting skipped items on stderr.
    pub fn load(&self, split: &str, options: &LoadOptions) -> Result<LoadedSplit, String> {
        let loaded = match self {
            Self::Pack { path, bytes } => {
                let pack = CorpusPack::parse(bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
                load_pack_split(&pack, split, options)
            }
            Self::Layout { root } => load_layout_subset(root, split, options),
        }
        .map_err(|issue| format!("{issue} (--strict stops at the first bad item)"))?;
        if !loaded.skipped.is_empty() {
            eprintln!(
                "warning: skipped {} bad item(s) in split {split}:",
                loaded.skipped.len()
            );
            for issue in &loaded.skipped {
                eprintln!("  {issue}");
            }
        }
        if loaded.utterances.is_empty() {
            return Err(format!("{}: split {split} has no usable utterances", self.describe()));
        }
        Ok(loaded)
    }

    /// The normalised transcripts of one split, without touching audio (for lexicons and LMs).
    pub fn transcripts(&self, split: &str) -> Result<Vec<String>, String> {
        let texts: Vec<String> = match self {
            Self::Pack { path, bytes } => {
                let pack = CorpusPack::parse(bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
                pack.split(split).map(|e| normalize_transcript(&e.text)).collect()
            }
            Self::Layout { root } => scan_subset(root, split)
                .map_err(|issue| issue.to_string())?
                .entries
                .iter()
                .map(|e| normalize_transcript(&e.text))
                .collect(),
        };
        if texts.iter().all(String::is_empty) {
            return Err(format!(
                "{}: split {split} has no transcripts to build a lexicon from",
                self.describe()
            ));
        }
        Ok(texts)
    }
}
