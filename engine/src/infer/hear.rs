//! What models hear in a recording: audio at any sample rate in, words out, through the same
//! front end (resampling, filterbank, the run's feature statistics) and decoder as evaluation.

use crate::audio::{FbankConfig, FeatureStats, fbank, resample};
use crate::data::Utterance;
use crate::decode::Decoder;
use crate::model::Conformer;
use crate::readback::ReadBackError;

use super::evaluate::evaluate;

/// Longest recording transcribed, in seconds: enough to speak a few sentences, short enough
/// that one forward pass stays small on any backend.
pub const MAX_RECORDING_SECONDS: f64 = 30.0;
/// Shortest recording transcribed, in seconds (the model subsamples frames by four).
pub const MIN_RECORDING_SECONDS: f64 = 0.25;

/// Why a recording cannot be transcribed.
#[derive(Debug, thiserror::Error)]
pub enum HearError {
    #[error("the recording's sample rate of {0} Hz is not one audio comes at (8,000 to 192,000 Hz)")]
    SampleRate(u32),
    #[error("the recording holds samples that are not numbers")]
    NotFinite,
    #[error("the recording is {seconds:.2} s long; it takes at least {MIN_RECORDING_SECONDS} s")]
    TooShort { seconds: f64 },
    #[error("the recording is {seconds:.1} s long; at most {MAX_RECORDING_SECONDS} s is transcribed")]
    TooLong { seconds: f64 },
    #[error(transparent)]
    ReadBack(#[from] ReadBackError),
}

/// Seconds of a recording kept before its first loud sample and after its last.
const SPEECH_MARGIN_SECONDS: f64 = 0.2;
/// A sample is loud from this share of the recording's peak amplitude on.
const LOUD_SHARE_OF_PEAK: f32 = 0.1;

/// The part of `samples` that holds what was said: from [`SPEECH_MARGIN_SECONDS`] before the
/// first sample louder than [`LOUD_SHARE_OF_PEAK`] of the peak to as long after the last.
///
/// A recording begins wherever the recorder happened to start, and the filterbank's frames
/// (10 ms apart) fall on the speech wherever that puts them. The lab's microphone test heard one
/// sentence as two different transcripts (20 % and 50 % WER), each time the same audio shifted
/// by a few milliseconds (docs/results.md, issue 30). Cut at a point the speech itself fixes,
/// the same speech gives the same frames however late the recorder started (unless the speaker
/// began within the margin of the start, when the recording is kept from its first sample).
fn speech_span(samples: &[f32], sample_rate: u32) -> &[f32] {
    let peak = samples.iter().fold(0.0f32, |peak, s| peak.max(s.abs()));
    let loud = |s: &f32| peak > 0.0 && s.abs() >= LOUD_SHARE_OF_PEAK * peak;
    let (Some(first), Some(last)) = (samples.iter().position(loud), samples.iter().rposition(loud)) else {
        return samples;
    };
    let margin = (SPEECH_MARGIN_SECONDS * f64::from(sample_rate)).round() as usize;
    &samples[first.saturating_sub(margin)..(last + 1 + margin).min(samples.len())]
}

/// `samples` (mono, in [-1, 1], at `sample_rate`) as a model input: cut to its speech
/// ([`speech_span`]), resampled to the front end's rate and turned into filterbank features. Its
/// transcript is empty; its duration is the whole recording's.
pub fn recording(samples: &[f32], sample_rate: u32, config: &FbankConfig) -> Result<Utterance, HearError> {
    if !(8_000..=192_000).contains(&sample_rate) {
        return Err(HearError::SampleRate(sample_rate));
    }
    if samples.iter().any(|s| !s.is_finite()) {
        return Err(HearError::NotFinite);
    }
    let seconds = samples.len() as f64 / f64::from(sample_rate);
    if seconds < MIN_RECORDING_SECONDS {
        return Err(HearError::TooShort { seconds });
    }
    if seconds > MAX_RECORDING_SECONDS {
        return Err(HearError::TooLong { seconds });
    }
    // Cut at the recording's own rate, so that the same speech resamples to the same samples.
    let audio = resample(speech_span(samples, sample_rate), sample_rate, config.sample_rate);
    let feats = fbank(&audio, config);
    Ok(Utterance {
        id: "recording".into(),
        text: String::new(),
        tokens: Vec::new(),
        frames: feats.len() / config.num_bins,
        feats,
        duration_seconds: seconds,
    })
}

/// What each of `models` (inference copies, ungated) hears in `recording`, decoded with
/// `decoder`, in the order given.
pub async fn transcribe<const N: usize>(
    models: [&Conformer; N],
    recording: &Utterance,
    stats: &FeatureStats,
    decoder: &Decoder,
) -> Result<[String; N], HearError> {
    let mut heard: [String; N] = std::array::from_fn(|_| String::new());
    let utterances = std::slice::from_ref(recording);
    for (words, model) in heard.iter_mut().zip(models) {
        // One decoder, one report; one utterance in it.
        let reports = evaluate(model, &[], utterances, stats, recording.frames.max(1), &[decoder]).await?;
        if let Some(utterance) = reports.into_iter().next().and_then(|r| r.utterances.into_iter().next()) {
            *words = utterance.hypothesis;
        }
    }
    Ok(heard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_at_another_rate_becomes_the_front_ends_frames_and_bad_ones_are_named() {
        let config = FbankConfig::default();
        // One second of a 440 Hz tone at 48 kHz: 16,000 samples after resampling, 98 frames.
        let tone: Vec<f32> = (0..48_000)
            .map(|i| 0.3 * (std::f32::consts::TAU * 440.0 * i as f32 / 48_000.0).sin())
            .collect();
        let utterance = recording(&tone, 48_000, &config).unwrap();
        assert_eq!(utterance.frames, config.num_frames(16_000));
        assert_eq!(utterance.feats.len(), utterance.frames * config.num_bins);
        assert!(matches!(
            recording(&tone, 4_000, &config),
            Err(HearError::SampleRate(4_000))
        ));
        assert!(matches!(
            recording(&tone[..4_000], 48_000, &config),
            Err(HearError::TooShort { .. })
        ));
        let long = vec![0.0; 31 * 16_000];
        assert!(matches!(
            recording(&long, 16_000, &config),
            Err(HearError::TooLong { .. })
        ));
        let mut broken = tone.clone();
        broken[7] = f32::NAN;
        assert!(
            recording(&broken, 48_000, &config)
                .unwrap_err()
                .to_string()
                .contains("not numbers")
        );
    }

    /// Speech (here a tone burst) heard after 0.5 s of silence, or after that and any number of
    /// samples more, gives the same frames bit for bit: where the recorder started does not
    /// matter. Silence alone, or speech from the first sample on, is kept whole.
    #[test]
    fn the_same_speech_gives_the_same_frames_however_late_the_recording_began() {
        let config = FbankConfig::default();
        let rate = 48_000;
        let burst: Vec<f32> = (0..rate / 2)
            .map(|i| {
                let t = i as f32 / rate as f32;
                0.5 * (std::f32::consts::TAU * 330.0 * t).sin() * (std::f32::consts::PI * 2.0 * t).sin()
            })
            .collect();
        let heard_after = |silence: usize| {
            let mut samples = vec![0.0; silence];
            samples.extend(&burst);
            samples.extend(vec![0.0; rate as usize]);
            recording(&samples, rate, &config).unwrap()
        };
        let reference = heard_after(rate as usize / 2);
        for extra in [1, 7, 160, 479, 4_801] {
            let shifted = heard_after(rate as usize / 2 + extra);
            assert_eq!(
                shifted.feats, reference.feats,
                "{extra} samples more of silence changed the frames"
            );
            let longer = shifted.duration_seconds - reference.duration_seconds;
            assert!(
                (longer - extra as f64 / f64::from(rate)).abs() < 1e-9,
                "the duration is the whole recording's"
            );
        }
        // Kept whole: the margin before the burst is only as long as the silence in front of it.
        let early = heard_after(100);
        assert!(early.frames < reference.frames);
        let silence = vec![0.0; rate as usize];
        assert_eq!(
            recording(&silence, rate, &config).unwrap().frames,
            config.num_frames(16_000)
        );
    }
}
