//! `prunelab corpus synth|pack`: regenerate the built-in corpus.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use prunelab_engine::audio::{SAMPLE_RATE, decode_audio, read_audio_bytes};
use prunelab_engine::bounded_read::{limits, read_bounded};
use prunelab_engine::data::{CorpusPack, SPLITS, check_utterance_length, is_librispeech_id, scan_subset, write_pack};
use prunelab_engine::text::{CharTokenizer, normalize_for_alphabet, unwritable_character_problem};

use crate::atomic::write_atomically;
use crate::data::corpus_source::default_pack_path;
use crate::data::fixture::{FixturePlan, write_fixture};
use crate::data::synth::{
    EvalSetPlan, HELD_OUT_VOICES, Job, SEEN_VOICES, SynthPlan, plan_eval_jobs, plan_jobs, synthesise,
};
use crate::options::parse::{at_least_one, between};
use crate::progress;

#[derive(Args)]
pub struct CorpusArgs {
    #[command(subcommand)]
    action: CorpusAction,
}

#[derive(Subcommand)]
enum CorpusAction {
    /// Speak the corpus with espeak-ng into a LibriSpeech-layout directory (train, dev, test).
    Synth {
        /// Output directory (created).
        #[arg(long, default_value = "corpus")]
        out: PathBuf,
        /// Seed of the sentence generator and voice jitter: same seed, same corpus.
        #[arg(long, default_value_t = SynthPlan::BUILT_IN.seed)]
        seed: u64,
        /// Training utterances per seen voice (12 voices).
        #[arg(long, value_parser = between::<0, 100_000>, default_value_t = SynthPlan::BUILT_IN.train_per_voice)]
        train_per_voice: usize,
        /// Dev utterances per seen voice (held-out sentences).
        #[arg(long, value_parser = between::<0, 100_000>, default_value_t = SynthPlan::BUILT_IN.dev_per_voice)]
        dev_per_voice: usize,
        /// Test utterances per held-out voice (4 voices).
        #[arg(long, value_parser = between::<0, 100_000>, default_value_t = SynthPlan::BUILT_IN.test_per_voice)]
        test_per_voice: usize,
    },
    /// Speak a larger held-out evaluation set for the built-in corpus (dev/ and test/ only):
    /// dev from the 12 training voices, test from the 4 held-out voices, every sentence new to
    /// the corpus. The defaults give 1,008 dev and 1,000 test utterances (about 7,400 words
    /// each), enough for a dense model's 95 % interval to be about ±1 WER point. Use it with
    /// `--eval-corpus` on eval, sweep and compare.
    EvalSet {
        /// Output directory (created).
        #[arg(long, default_value = "eval-corpus")]
        out: PathBuf,
        /// Dev utterances per training voice (12 voices).
        #[arg(long, value_parser = between::<0, 100_000>, default_value_t = 84)]
        dev_per_voice: usize,
        /// Test utterances per held-out voice (4 voices).
        #[arg(long, value_parser = between::<0, 100_000>, default_value_t = 250)]
        test_per_voice: usize,
    },
    /// Write the built-in corpus as a LibriSpeech tree (train-clean-100/, dev-clean/,
    /// test-clean/): a fixture for tests and benchmarks, no espeak-ng needed.
    Fixture {
        /// Output directory (created).
        #[arg(long)]
        out: PathBuf,
        /// The pack to read (default: the built-in corpus).
        #[arg(long)]
        pack: Option<PathBuf>,
        /// Directory names for the train, dev and test splits (separated by commas or spaces).
        #[arg(long, value_delimiter = ',', num_args = 1..=3, default_values = ["train-clean-100", "dev-clean", "test-clean"])]
        subsets: Vec<String>,
        /// At most this many utterances per split (default: all).
        #[arg(long, value_parser = at_least_one)]
        per_split: Option<usize>,
        /// Copies of each utterance under new chapter ids (hard-linked audio), e.g. 162 for a
        /// 100k-entry tree.
        #[arg(long, value_parser = between::<1, 10_000>, default_value_t = 1)]
        copies: usize,
    },
    /// Bundle a LibriSpeech-layout directory's train/dev/test into one asset.
    Pack {
        /// Directory written by `corpus synth`.
        #[arg(long, default_value = "corpus")]
        dir: PathBuf,
        /// Output asset (default: the built-in corpus in static/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub fn run(args: CorpusArgs) -> Result<(), String> {
    match args.action {
        CorpusAction::Synth {
            out,
            seed,
            train_per_voice,
            dev_per_voice,
            test_per_voice,
        } => {
            let plan = SynthPlan {
                seed,
                train_per_voice,
                dev_per_voice,
                test_per_voice,
            };
            let voices = SEEN_VOICES.len() + HELD_OUT_VOICES.len();
            tell!("synthesising into {} with {voices} voices (seed {seed})", out.display());
            let written = synthesise_with_bar(&out, &plan_jobs(&plan))?;
            say!("wrote {written} utterances to {}", out.display());
            Ok(())
        }
        CorpusAction::EvalSet {
            out,
            dev_per_voice,
            test_per_voice,
        } => {
            if dev_per_voice + test_per_voice == 0 {
                return Err("an evaluation set needs --dev-per-voice or --test-per-voice above 0".into());
            }
            let plan = EvalSetPlan {
                corpus: SynthPlan::BUILT_IN,
                dev_per_voice,
                test_per_voice,
            };
            tell!(
                "synthesising an evaluation set for the built-in corpus into {}: {} dev, {} test utterances",
                out.display(),
                dev_per_voice * SEEN_VOICES.len(),
                test_per_voice * HELD_OUT_VOICES.len()
            );
            let written = synthesise_with_bar(&out, &plan_eval_jobs(&plan))?;
            say!("wrote {written} utterances to {}", out.display());
            Ok(())
        }
        CorpusAction::Fixture {
            out,
            pack,
            subsets,
            per_split,
            copies,
        } => {
            let path = pack.unwrap_or_else(default_pack_path);
            let bytes = read_bounded(&path, limits::CORPUS_PACK, "corpus pack").map_err(|e| e.to_string())?;
            let pack = CorpusPack::parse(&bytes, &path.display().to_string()).map_err(|e| e.to_string())?;
            let subsets: [String; 3] = subsets
                .try_into()
                .map_err(|_| "--subsets takes three names: train, dev and test".to_string())?;
            check_subset_names(&subsets)?;
            let plan = FixturePlan {
                subsets,
                per_split,
                copies,
            };
            let written = write_fixture(&pack, &out, &plan)?;
            say!(
                "wrote {written} utterances to {} ({})",
                out.display(),
                plan.subsets.join(", ")
            );
            Ok(())
        }
        CorpusAction::Pack { dir, out } => {
            let out = out.unwrap_or_else(default_pack_path);
            let mut items = Vec::new();
            for split in SPLITS {
                let scan = scan_subset(&dir, split).map_err(|e| e.to_string())?;
                if let Some(issue) = scan.issues.first() {
                    return Err(format!("refusing to pack a corpus with problems: {issue}"));
                }
                if scan.entries.is_empty() {
                    return Err(format!(
                        "refusing to pack {}: {split}/ holds no utterances (the pack needs train, dev and test)",
                        dir.display()
                    ));
                }
                for entry in scan.entries {
                    let audio = read_audio_bytes(&entry.audio_path).map_err(|e| e.to_string())?;
                    check_packable(&entry.audio_path, &entry.id, &audio, &entry.text)
                        .map_err(|problem| format!("refusing to pack {}: {problem}", dir.display()))?;
                    items.push((split, entry.id, entry.text, audio));
                }
            }
            let description = format!(
                "Prunelab built-in corpus: espeak-ng speech, {} seen + {} held-out voices, 16 kHz FLAC quantised to 10 bits",
                SEEN_VOICES.len(),
                HELD_OUT_VOICES.len()
            );
            let bytes = write_pack(
                &description,
                items
                    .iter()
                    .map(|(s, id, t, a)| (*s, id.as_str(), t.as_str(), a.as_slice())),
            );
            write_atomically(&out, &bytes)?;
            say!(
                "packed {} utterances into {} ({:.1} MiB)",
                items.len(),
                out.display(),
                bytes.len() as f64 / 1048576.0
            );
            Ok(())
        }
    }
}

/// What the lab will do with each utterance of the pack, done once here: the audio decodes
/// at 16 kHz and the transcript leaves something to learn after normalisation.
fn check_packable(path: &std::path::Path, id: &str, audio: &[u8], text: &str) -> Result<(), String> {
    let name = path.display().to_string();
    if !is_librispeech_id(id) {
        return Err(format!(
            "{name}: its id {id:?} is not <speaker>-<chapter>-<utterance> in digits"
        ));
    }
    let decoded = decode_audio(audio, &name).map_err(|e| e.to_string())?;
    decoded
        .require_sample_rate(SAMPLE_RATE, &name)
        .map_err(|e| e.to_string())?;
    check_utterance_length(decoded.samples.len() as u64).map_err(|problem| format!("{name}: {problem}"))?;
    let normalised =
        normalize_for_alphabet(text).map_err(|c| format!("{name}: {}", unwritable_character_problem(c)))?;
    if normalised.is_empty() {
        return Err(format!("{name}: its transcript is empty after normalisation"));
    }
    CharTokenizer
        .encode(&normalised)
        .map(drop)
        .map_err(|c| format!("{name}: its transcript has the untokenizable character {c:?}"))
}

/// Speaks `jobs` into `out` with a bar over utterances.
fn synthesise_with_bar(out: &Path, jobs: &[Job]) -> Result<usize, String> {
    let bar = progress::counter(jobs.len(), "speaking");
    let written = synthesise(out, jobs, |done, _| bar.set_position(done as u64));
    bar.finish_and_clear();
    written
}

/// The split directories of a fixture are plain names inside `--out`, one per split: a path
/// ("../x", "a/b") would write outside it, and a repeated name would merge two splits.
fn check_subset_names(subsets: &[String; 3]) -> Result<(), String> {
    for name in subsets {
        let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\']);
        if !plain {
            return Err(format!(
                "--subsets {name:?}: a split's directory must be a plain name inside --out (no '/', '.' or '..')"
            ));
        }
    }
    if subsets[0] == subsets[1] || subsets[0] == subsets[2] || subsets[1] == subsets[2] {
        return Err(format!(
            "--subsets {}: train, dev and test need three different names, or the splits merge",
            subsets.join(" ")
        ));
    }
    Ok(())
}
