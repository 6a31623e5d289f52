//! Where training and evaluation data come from: the built-in pack (default), a directory with
//! `train`/`dev`/`test` in the LibriSpeech layout, or a LibriSpeech root whose subsets make up
//! each split.

use std::path::{Path, PathBuf};

use clap::Args;
use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::data::{
    CorpusIndex, CorpusPack, LoadOptions, LoadedSplit, index_subsets, load_layout_subset, load_pack_split, scan_subset,
};
use prunelab_engine::text::normalize_transcript;

use crate::data::stream::{default_workers, featurise_all};

/// The packed built-in corpus shipped in `static/`.
pub fn default_pack_path() -> PathBuf {
    match std::env::var_os("PRUNELAB_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../static/corpus.plc"),
    }
}

/// The LibriSpeech subsets a split uses when none are named.
pub const LIBRISPEECH_TRAIN: [&str; 3] = ["train-clean-100", "train-clean-360", "train-other-500"];
pub const LIBRISPEECH_DEV: [&str; 2] = ["dev-clean", "dev-other"];
pub const LIBRISPEECH_TEST: [&str; 2] = ["test-clean", "test-other"];

/// `--corpus` or `--librispeech` with its subsets, shared by every command that reads data.
#[derive(Args, Clone, Debug, Default)]
pub struct CorpusChoice {
    /// Corpus: a packed .plc file or a directory holding train/, dev/ and test/ in the
    /// LibriSpeech layout (default: the built-in corpus).
    #[arg(long, conflicts_with = "librispeech")]
    pub corpus: Option<PathBuf>,
    /// A LibriSpeech root: the directory holding train-clean-100/, dev-clean/, … Training
    /// streams it from disk instead of loading it.
    #[arg(long)]
    pub librispeech: Option<PathBuf>,
    /// LibriSpeech subsets to train on, comma-separated (default: all three, 960 h).
    #[arg(long, value_delimiter = ',', requires = "librispeech")]
    pub train: Vec<String>,
    /// LibriSpeech subsets for validation (default: dev-clean,dev-other).
    #[arg(long, value_delimiter = ',', requires = "librispeech")]
    pub dev: Vec<String>,
    /// LibriSpeech subsets for the final test (default: test-clean,test-other).
    #[arg(long, value_delimiter = ',', requires = "librispeech")]
    pub test: Vec<String>,
    /// A larger held-out evaluation corpus: a directory with dev/ and test/ in the LibriSpeech
    /// layout, such as `prunelab corpus eval-set` writes. Dev and test are read from it; the
    /// training split and the lexicon's transcripts still come from --corpus.
    #[arg(long, conflicts_with = "librispeech")]
    pub eval_corpus: Option<PathBuf>,
}

impl CorpusChoice {
    pub fn open(&self) -> Result<CorpusSource, String> {
        match &self.librispeech {
            Some(root) => {
                if !root.is_dir() {
                    return Err(format!(
                        "{}: not a directory (expected a LibriSpeech root)",
                        root.display()
                    ));
                }
                let or = |given: &[String], default: &[&str]| -> Vec<String> {
                    if given.is_empty() {
                        default.iter().map(|s| s.to_string()).collect()
                    } else {
                        given.to_vec()
                    }
                };
                Ok(CorpusSource::LibriSpeech {
                    root: root.clone(),
                    train: or(&self.train, &LIBRISPEECH_TRAIN),
                    dev: or(&self.dev, &LIBRISPEECH_DEV),
                    test: or(&self.test, &LIBRISPEECH_TEST),
                })
            }
            None => {
                let corpus = CorpusSource::open(&self.corpus.clone().unwrap_or_else(default_pack_path))?;
                match &self.eval_corpus {
                    None => Ok(corpus),
                    Some(root) => CorpusSource::with_eval_set(corpus, root),
                }
            }
        }
    }
}

/// A corpus to read splits from.
pub enum CorpusSource {
    Pack {
        path: PathBuf,
        bytes: Vec<u8>,
    },
    Layout {
        root: PathBuf,
    },
    LibriSpeech {
        root: PathBuf,
        train: Vec<String>,
        dev: Vec<String>,
        test: Vec<String>,
    },
    /// A corpus whose dev and test splits are replaced by a held-out evaluation set.
    WithEvalSet {
        corpus: Box<CorpusSource>,
        eval_root: PathBuf,
    },
}

impl CorpusSource {
    /// A `.plc` file is a pack; a directory is a LibriSpeech-layout tree with train/dev/test.
    pub fn open(path: &Path) -> Result<Self, String> {
        if path.is_dir() {
            return Ok(Self::Layout {
                root: path.to_path_buf(),
            });
        }
        let bytes = read_bounded(path, limits::CORPUS_PACK, "corpus pack").map_err(|e| e.to_string())?;
        // Parse once up front so a bad pack fails before any work starts.
        CorpusPack::parse(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
        Ok(Self::Pack {
            path: path.to_path_buf(),
            bytes,
        })
    }

    /// `corpus` with dev and test read from the directory `eval_root` instead.
    pub fn with_eval_set(corpus: CorpusSource, eval_root: &Path) -> Result<Self, String> {
        let has = |split: &str| eval_root.join(split).is_dir();
        if !has("dev") && !has("test") {
            return Err(format!(
                "{}: not an evaluation corpus (expected dev/ and test/ in the LibriSpeech layout; \
                 `prunelab corpus eval-set` writes one)",
                eval_root.display()
            ));
        }
        Ok(Self::WithEvalSet {
            corpus: Box::new(corpus),
            eval_root: eval_root.to_path_buf(),
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Pack { path, .. } => path.display().to_string(),
            Self::Layout { root } => root.display().to_string(),
            Self::LibriSpeech { root, .. } => format!("LibriSpeech at {}", root.display()),
            Self::WithEvalSet { corpus, eval_root } => {
                format!("{} (dev and test from {})", corpus.describe(), eval_root.display())
            }
        }
    }

    /// The held-out evaluation set standing in for `split`, if there is one.
    fn eval_set_for(&self, split: &str) -> Option<CorpusSource> {
        match self {
            Self::WithEvalSet { eval_root, .. } if split != "train" => Some(Self::Layout {
                root: eval_root.clone(),
            }),
            _ => None,
        }
    }

    /// The directory subsets that make up `split` (`train`, `dev` or `test`).
    pub fn subsets(&self, split: &str) -> Vec<String> {
        match self {
            Self::Pack { .. } | Self::Layout { .. } => vec![split.to_string()],
            Self::LibriSpeech { train, dev, test, .. } => match split {
                "train" => train.clone(),
                "dev" => dev.clone(),
                "test" => test.clone(),
                other => vec![other.to_string()],
            },
            Self::WithEvalSet { corpus, .. } => corpus.subsets(split),
        }
    }

    /// The root of a directory corpus (not of a pack).
    pub fn root(&self) -> Option<&Path> {
        match self {
            Self::Pack { .. } => None,
            Self::Layout { root } | Self::LibriSpeech { root, .. } => Some(root),
            Self::WithEvalSet { corpus, .. } => corpus.root(),
        }
    }

    /// Indexes the named subsets of a directory corpus, reporting skipped items on stderr.
    pub fn index(&self, subsets: &[String], strict: bool) -> Result<CorpusIndex, String> {
        let root = self
            .root()
            .ok_or_else(|| format!("{}: a packed corpus has no subsets to index", self.describe()))?;
        let index = index_subsets(root, subsets, strict, |n| {
            if n > 0 && n % 20_000 == 0 {
                tell!("  indexed {n} utterances");
            }
        })
        .map_err(|issue| strict_error(&issue, strict))?;
        report_skipped(&index.skipped, &subsets.join(","));
        if index.entries.is_empty() {
            return Err(format!(
                "{}: {} has no usable utterances",
                self.describe(),
                subsets.join(",")
            ));
        }
        Ok(index)
    }

    /// Decodes and featurises one split into memory, reporting skipped items on stderr.
    /// `options.speeds` applies to packs and train/dev/test trees; LibriSpeech splits are read
    /// as they are (its training split is streamed, never loaded whole).
    pub fn load(&self, split: &str, options: &LoadOptions) -> Result<LoadedSplit, String> {
        if let Some(eval_set) = self.eval_set_for(split) {
            return eval_set.load(split, options);
        }
        let loaded = match self {
            Self::Pack { path, bytes } => {
                let pack = CorpusPack::parse(bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
                load_pack_split(&pack, split, options)
            }
            Self::Layout { root } => load_layout_subset(root, split, options),
            Self::LibriSpeech { .. } => {
                let index = self.index(&self.subsets(split), options.strict)?;
                let (utterances, skipped) = featurise_all(&index.entries, &options.fbank, default_workers());
                if options.strict
                    && let Some(first) = skipped.first()
                {
                    return Err(format!("{first} (--strict stops at the first bad item)"));
                }
                report_skipped(&skipped, &format!("split {split}"));
                return Ok(LoadedSplit { utterances, skipped });
            }
            Self::WithEvalSet { corpus, .. } => return corpus.load(split, options),
        }
        .map_err(|issue| strict_error(&issue, options.strict))?;
        report_skipped(&loaded.skipped, &format!("split {split}"));
        if loaded.utterances.is_empty() {
            return Err(format!("{}: split {split} has no usable utterances", self.describe()));
        }
        Ok(loaded)
    }

    /// The normalised transcripts of one split, without touching audio (for lexicons and LMs).
    pub fn transcripts(&self, split: &str) -> Result<Vec<String>, String> {
        if let Some(eval_set) = self.eval_set_for(split) {
            return eval_set.transcripts(split);
        }
        let texts: Vec<String> = match self {
            Self::Pack { path, bytes } => {
                let pack = CorpusPack::parse(bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
                pack.transcripts(split)
            }
            Self::Layout { root } | Self::LibriSpeech { root, .. } => {
                let mut texts = Vec::new();
                for subset in self.subsets(split) {
                    let scan = scan_subset(root, &subset).map_err(|issue| issue.to_string())?;
                    texts.extend(scan.entries.iter().map(|e| normalize_transcript(&e.text)));
                }
                texts
            }
            Self::WithEvalSet { corpus, .. } => return corpus.transcripts(split),
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

/// Lists skipped items on stderr (every one: a user fixes a corpus from this list).
pub fn report_skipped(skipped: &[prunelab_engine::data::CorpusIssue], what: &str) {
    if skipped.is_empty() {
        return;
    }
    tell!("warning: skipped {} bad item(s) in {what}:", skipped.len());
    for issue in skipped {
        tell!("  {issue}");
    }
}

/// The message for a corpus error, saying why it stopped the run when `--strict` did.
fn strict_error(issue: &prunelab_engine::data::CorpusIssue, strict: bool) -> String {
    if strict {
        format!("{issue} (--strict stops at the first bad item)")
    } else {
        issue.to_string()
    }
}
