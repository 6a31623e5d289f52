//! Turning corpus items into model-ready utterances (features + token ids), with each bad item
//! reported by name and either skipped or fatal (`strict`).

use std::borrow::Cow;
use std::path::Path;

use super::{CorpusIssue, CorpusPack, IndexEntry, scan_subset};
use crate::audio::{FbankConfig, SAMPLE_RATE, decode_audio, fbank, read_audio_bytes, read_audio_file, resample};
use crate::text::{CharTokenizer, normalize_for_alphabet, unwritable_character_problem};

/// An item before decoding: where it came from, its transcript and its encoded audio.
pub struct RawItem<'a> {
    /// Path or `pack:<id>`; used in every message about this item.
    pub name: String,
    pub id: String,
    pub text: String,
    pub audio: Result<Cow<'a, [u8]>, String>,
}

/// A decoded utterance: log-mel features (not yet normalised) and token ids.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    pub id: String,
    pub text: String,
    pub tokens: Vec<usize>,
    /// Row-major `[frames, num_bins]`.
    pub feats: Vec<f32>,
    pub frames: usize,
    pub duration_seconds: f64,
}

impl Utterance {
    /// A stand-in utterance for benchmarks and tests: `frames` frames of 80 features uniform in
    /// [-1, 1) and `tokens` letters, drawn from `rng` (letters first, then features).
    pub fn random(id: String, frames: usize, tokens: usize, rng: &mut crate::rng::SplitMix64) -> Self {
        Self {
            id,
            text: String::new(),
            tokens: (0..tokens).map(|_| 3 + rng.below(26)).collect(),
            feats: (0..frames * 80).map(|_| rng.next_f64() as f32 * 2.0 - 1.0).collect(),
            frames,
            duration_seconds: frames as f64 / FbankConfig::default().frames_per_second(),
        }
    }
}

/// The usable utterances of a split and the items that were skipped.
#[derive(Debug, Default)]
pub struct LoadedSplit {
    pub utterances: Vec<Utterance>,
    pub skipped: Vec<CorpusIssue>,
}

impl LoadedSplit {
    pub fn total_seconds(&self) -> f64 {
        self.utterances.iter().map(|u| u.duration_seconds).sum()
    }
}

/// How to turn audio into features.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    pub fbank: FbankConfig,
    /// Fail on the first bad item instead of skipping it.
    pub strict: bool,
    /// Speed perturbation (Ko et al. 2015): each factor other than 1.0 adds a copy of every
    /// utterance played that much faster (tempo and pitch together), with id suffix `-sp<f>`.
    /// `[1.0]` (or empty) for evaluation.
    pub speeds: Vec<f64>,
}

impl LoadOptions {
    /// Plain features, no perturbation: what evaluation uses.
    pub fn plain(fbank: &FbankConfig, strict: bool) -> Self {
        Self {
            fbank: fbank.clone(),
            strict,
            speeds: vec![1.0],
        }
    }
}

/// Decodes, checks and featurises `items`. In `strict` mode the first bad item is an error;
/// otherwise bad items are skipped and listed in `skipped`.
pub fn load_items<'a>(
    items: impl IntoIterator<Item = RawItem<'a>>,
    options: &LoadOptions,
) -> Result<LoadedSplit, CorpusIssue> {
    let mut split = LoadedSplit::default();
    for item in items {
        match load_one(item, options) {
            Ok(mut utterances) => split.utterances.append(&mut utterances),
            Err(issue) if options.strict => return Err(issue),
            Err(issue) => split.skipped.push(issue),
        }
    }
    Ok(split)
}

fn load_one(item: RawItem<'_>, options: &LoadOptions) -> Result<Vec<Utterance>, CorpusIssue> {
    let issue = |problem: String| CorpusIssue {
        location: item.name.clone(),
        problem,
    };
    let text = normalize_for_alphabet(&item.text).map_err(|c| issue(unwritable_character_problem(c)))?;
    if text.is_empty() {
        return Err(issue("empty transcript".to_string()));
    }
    let tokens = CharTokenizer
        .encode(&text)
        .map_err(|c| issue(format!("transcript has untokenizable character {c:?}")))?;
    let bytes = item.audio.as_ref().map_err(|e| issue(e.clone()))?;
    let audio = decode_audio(bytes, &item.name).map_err(|e| issue(e.problem.to_string()))?;
    audio
        .require_sample_rate(SAMPLE_RATE, &item.name)
        .map_err(|e| issue(e.problem.to_string()))?;
    super::index::check_utterance_length(audio.samples.len() as u64).map_err(|e| issue(e.to_string()))?;
    let speeds: &[f64] = if options.speeds.is_empty() {
        &[1.0]
    } else {
        &options.speeds
    };
    speeds
        .iter()
        .map(|&speed| {
            featurise(&item.id, &text, &tokens, &audio.samples, speed, &options.fbank).map_err(|e| issue(e.to_string()))
        })
        .collect()
}

/// What a speed-perturbed copy's id adds to its utterance's id, before the speed.
const SPEED_MARK: &str = "-sp";

/// The id of the recorded utterance behind `id` (a speed-perturbed copy names it first).
pub fn recorded_id(id: &str) -> &str {
    match id.rsplit_once(SPEED_MARK) {
        Some((recorded, speed)) if speed.parse::<f64>().is_ok() => recorded,
        _ => id,
    }
}

/// Audio too short to make one filterbank frame of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("audio is shorter than one analysis frame")]
pub struct ShorterThanOneFrame;

/// Features of `samples` played at `speed`: the utterance the model trains on.
fn featurise(
    id: &str,
    text: &str,
    tokens: &[usize],
    samples: &[f32],
    speed: f64,
    fbank_config: &FbankConfig,
) -> Result<Utterance, ShorterThanOneFrame> {
    let (id, samples) = if speed == 1.0 {
        (id.to_string(), Cow::Borrowed(samples))
    } else {
        // Treat the samples as recorded at speed × 16 kHz and resample back to 16 kHz.
        let source_rate = (f64::from(SAMPLE_RATE) * speed).round() as u32;
        (
            format!("{id}{SPEED_MARK}{speed}"),
            Cow::Owned(resample(samples, source_rate, SAMPLE_RATE)),
        )
    };
    let feats = fbank(&samples, fbank_config);
    let frames = feats.len() / fbank_config.num_bins;
    if frames == 0 {
        return Err(ShorterThanOneFrame);
    }
    Ok(Utterance {
        id,
        text: text.to_string(),
        tokens: tokens.to_vec(),
        feats,
        frames,
        duration_seconds: samples.len() as f64 / f64::from(SAMPLE_RATE),
    })
}

/// Reads, decodes and featurises one indexed utterance at `speed`. The index checked the
/// transcript and header; this finds what only decoding can (a truncated or corrupt stream).
pub fn load_indexed(entry: &IndexEntry, speed: f64, fbank_config: &FbankConfig) -> Result<Utterance, CorpusIssue> {
    let issue = |problem: String| CorpusIssue::new(&entry.audio_path, problem);
    let audio = read_audio_file(&entry.audio_path).map_err(|e| issue(e.problem.to_string()))?;
    audio
        .require_sample_rate(SAMPLE_RATE, &entry.id)
        .map_err(|e| issue(e.problem.to_string()))?;
    let tokens = CharTokenizer
        .encode(&entry.text)
        .map_err(|c| issue(format!("transcript has untokenizable character {c:?}")))?;
    featurise(&entry.id, &entry.text, &tokens, &audio.samples, speed, fbank_config).map_err(|e| issue(e.to_string()))
}

/// Loads one split of a packed corpus.
pub fn load_pack_split(pack: &CorpusPack<'_>, split: &str, options: &LoadOptions) -> Result<LoadedSplit, CorpusIssue> {
    let items = pack.split(split).map(|entry| RawItem {
        name: format!("pack:{}", entry.id),
        id: entry.id.clone(),
        text: entry.text.clone(),
        audio: Ok(Cow::Borrowed(pack.audio(entry))),
    });
    load_items(items, options)
}

/// Loads `<root>/<subset>` in the LibriSpeech layout. Layout problems (orphan audio, transcript
/// lines without audio, unreadable directories) are skipped or fatal like decoding problems.
pub fn load_layout_subset(root: &Path, subset: &str, options: &LoadOptions) -> Result<LoadedSplit, CorpusIssue> {
    let scan = scan_subset(root, subset)?;
    if options.strict
        && let Some(first) = scan.issues.first()
    {
        return Err(first.clone());
    }
    let items = scan.entries.into_iter().map(|entry| RawItem {
        name: entry.audio_path.display().to_string(),
        id: entry.id,
        text: entry.text,
        audio: read_audio_bytes(&entry.audio_path)
            .map(Cow::Owned)
            .map_err(|e| e.problem),
    });
    let mut split = load_items(items, options)?;
    let mut issues = scan.issues;
    issues.append(&mut split.skipped);
    split.skipped = issues;
    Ok(split)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(rate: u32, seconds: f32) -> Vec<u8> {
        crate::audio::test_wav::wav_bytes(rate, 1, (rate as f32 * seconds) as usize)
    }

    fn item(name: &str, text: &str, audio: Vec<u8>) -> RawItem<'static> {
        RawItem {
            name: name.into(),
            id: name.into(),
            text: text.into(),
            audio: Ok(Cow::Owned(audio)),
        }
    }

    #[test]
    fn bad_items_are_skipped_with_reasons_or_fatal_when_strict() {
        let items = || {
            vec![
                item("good.wav", "hello world", wav(16_000, 0.5)),
                item("empty-text.wav", "  ", wav(16_000, 0.5)),
                item("slow.wav", "hello", wav(8_000, 0.5)),
                item("garbage.flac", "hello", b"fLaC-not-really".to_vec()),
                RawItem {
                    name: "missing.flac".into(),
                    id: "m".into(),
                    text: "HI".into(),
                    audio: Err("cannot read file: gone".into()),
                },
            ]
        };
        let split = load_items(items(), &LoadOptions::plain(&FbankConfig::default(), false)).unwrap();
        assert_eq!(split.utterances.len(), 1);
        assert_eq!(split.utterances[0].text, "HELLO WORLD");
        let reasons: Vec<String> = split.skipped.iter().map(|i| i.to_string()).collect();
        assert_eq!(reasons.len(), 4);
        assert!(
            reasons[0].starts_with("empty-text.wav: empty transcript"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("slow.wav") && reasons[1].contains("8000 Hz"),
            "{reasons:?}"
        );
        assert!(
            reasons[2].contains("garbage.flac") && reasons[2].contains("truncated FLAC"),
            "{reasons:?}"
        );
        assert!(reasons[3].contains("missing.flac"), "{reasons:?}");

        let err = load_items(items(), &LoadOptions::plain(&FbankConfig::default(), true)).unwrap_err();
        assert!(err.to_string().starts_with("empty-text.wav"), "{err}");
    }

    #[test]
    fn speed_perturbation_adds_faster_and_slower_copies() {
        let options = LoadOptions {
            speeds: vec![0.9, 1.0, 1.1],
            ..LoadOptions::plain(&FbankConfig::default(), true)
        };
        let split = load_items([item("a.wav", "hi", wav(16_000, 1.0))], &options).unwrap();
        let ids: Vec<&str> = split.utterances.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a.wav-sp0.9", "a.wav", "a.wav-sp1.1"]);
        let durations: Vec<f64> = split.utterances.iter().map(|u| u.duration_seconds).collect();
        assert!(
            (durations[0] - 1.0 / 0.9).abs() < 1e-3 && (durations[2] - 1.0 / 1.1).abs() < 1e-3,
            "{durations:?}"
        );
    }
}
