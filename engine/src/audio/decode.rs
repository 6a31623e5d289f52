//! WAV and FLAC decoding to mono f32 samples in [-1, 1], with errors that name the source.

use std::io::Cursor;
use std::path::Path;

use crate::bounded_read::{ReadError, read_bounded};

/// Decoded mono audio.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples scaled to [-1, 1] (16-bit PCM divided by 32768).
    pub samples: Vec<f32>,
    pub sample_rate: u32,
}

impl Audio {
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.sample_rate)
    }
}

/// Why a piece of audio could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AudioProblem {
    #[error("cannot read file: {0}")]
    Unreadable(#[from] std::io::Error),
    /// Not a regular file, or larger than any audio file may be.
    #[error("{0}")]
    Refused(String),
    #[error("not a WAV or FLAC file (unrecognised header)")]
    UnknownFormat,
    #[error("corrupt {format} data: {detail}")]
    Corrupt { format: &'static str, detail: String },
    #[error("truncated FLAC: {0}")]
    Truncated(String),
    #[error("{channels} channels; only mono audio is supported")]
    NotMono { channels: u16 },
    #[error("sample rate {found} Hz; expected {expected} Hz")]
    WrongSampleRate { found: u32, expected: u32 },
    #[error("unsupported sample format: {0}")]
    UnsupportedFormat(String),
    #[error("no samples")]
    Empty,
    #[error("decodes to more than the {MAX_AUDIO_SAMPLES} samples one file may hold")]
    TooLong,
}

/// The most samples one file may decode to: 2^27, 2 h 20 min at 16 kHz, 512 MiB as f32.
/// Compressed formats can promise (or, with constant FLAC frames, really hold) far more audio
/// than their size suggests, so decoding stops here instead of exhausting memory.
pub const MAX_AUDIO_SAMPLES: usize = 1 << 27;

/// Sample rates a file may have: resampling a rate of 0 divides by zero, and an absurd one
/// builds filter tables of gigabytes.
pub const READABLE_RATES: std::ops::RangeInclusive<u32> = 1_000..=384_000;

/// Room reserved up front for the samples a header promises: never more than the file could
/// plausibly hold (FLAC rarely beats 8 samples a byte on speech; WAV is exact), so a header
/// that lies costs nothing before the data disproves it.
/// Refuses a header's rate outside [`READABLE_RATES`] before any sample is decoded.
fn readable_rate(rate: u32) -> Result<(), AudioProblem> {
    if READABLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioProblem::UnsupportedFormat(format!(
            "sample rate {rate} Hz (1 kHz to 384 kHz are read)"
        )))
    }
}

fn reserve_for(promised: u64, file_bytes: usize, max_samples: usize) -> usize {
    let plausible = file_bytes.saturating_mul(8);
    usize::try_from(promised)
        .unwrap_or(usize::MAX)
        .min(plausible)
        .min(max_samples)
}

/// An audio problem together with the file (or name) it came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {problem}")]
pub struct AudioError {
    pub source_name: String,
    pub problem: AudioProblem,
}

/// The largest audio file read: the most samples a file may decode to, at 4 bytes each, plus
/// headers.
const MAX_AUDIO_FILE_BYTES: u64 = MAX_AUDIO_SAMPLES as u64 * 4 + crate::bounded_read::MIB;

/// The undecoded bytes of an audio file: a regular file no larger than any audio file may be.
pub fn read_audio_bytes(path: &Path) -> Result<Vec<u8>, ReadError> {
    read_bounded(path, MAX_AUDIO_FILE_BYTES, "audio file")
}

/// Reads and decodes a WAV or FLAC file.
pub fn read_audio_file(path: &Path) -> Result<Audio, AudioError> {
    let name = path.display().to_string();
    let bytes = read_audio_bytes(path).map_err(|e| AudioError {
        source_name: name.clone(),
        problem: AudioProblem::Refused(e.problem),
    })?;
    decode_audio(&bytes, &name)
}

/// Decodes WAV or FLAC bytes (sniffed from the header). `source_name` appears in errors.
pub fn decode_audio(bytes: &[u8], source_name: &str) -> Result<Audio, AudioError> {
    decode_audio_at_most(bytes, source_name, MAX_AUDIO_SAMPLES)
}

/// [`decode_audio`] with another bound on the number of samples (tests use small ones).
fn decode_audio_at_most(bytes: &[u8], source_name: &str, max_samples: usize) -> Result<Audio, AudioError> {
    let result = if bytes.starts_with(b"fLaC") {
        decode_flac(bytes, max_samples)
    } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WAVE") {
        decode_wav(bytes, max_samples)
    } else {
        Err(AudioProblem::UnknownFormat)
    };
    let audio = result.map_err(|problem| AudioError {
        source_name: source_name.to_string(),
        problem,
    })?;
    if audio.samples.is_empty() {
        return Err(AudioError {
            source_name: source_name.to_string(),
            problem: AudioProblem::Empty,
        });
    }
    Ok(audio)
}

fn decode_flac(bytes: &[u8], max_samples: usize) -> Result<Audio, AudioProblem> {
    let corrupt = |e: claxon::Error| AudioProblem::Corrupt {
        format: "FLAC",
        detail: e.to_string(),
    };
    let mut reader = claxon::FlacReader::new(Cursor::new(bytes)).map_err(|e| {
        if is_end_of_data(&e) {
            AudioProblem::Truncated("the file ends inside its header".into())
        } else {
            corrupt(e)
        }
    })?;
    let info = reader.streaminfo();
    if info.channels != 1 {
        return Err(AudioProblem::NotMono {
            channels: info.channels as u16,
        });
    }
    readable_rate(info.sample_rate)?;
    if let Some(frame_bits) = super::flac_frames::first_frame_bits_per_sample(bytes)
        && frame_bits != info.bits_per_sample
    {
        return Err(AudioProblem::Corrupt {
            format: "FLAC",
            detail: format!(
                "its header says {} bits per sample, its frames hold {frame_bits}; decoded, every sample would be scaled wrong",
                info.bits_per_sample
            ),
        });
    }
    let scale = 1.0 / (1u64 << (info.bits_per_sample - 1)) as f32;
    let mut samples = Vec::with_capacity(reserve_for(info.samples.unwrap_or(0), bytes.len(), max_samples));
    for sample in reader.samples() {
        if samples.len() == max_samples {
            return Err(AudioProblem::TooLong);
        }
        match sample {
            Ok(s) => samples.push(s as f32 * scale),
            // claxon reports a stream cut short as an unexpected end of file.
            Err(e) if is_end_of_data(&e) => return Err(truncated_after(info.samples, samples.len())),
            Err(e) => return Err(corrupt(e)),
        }
    }
    if info.samples.is_some_and(|expected| expected != samples.len() as u64) {
        return Err(truncated_after(info.samples, samples.len()));
    }
    Ok(Audio {
        samples,
        sample_rate: info.sample_rate,
    })
}

fn truncated_after(expected: Option<u64>, found: usize) -> AudioProblem {
    AudioProblem::Truncated(match expected {
        Some(expected) => format!("header promises {expected} samples, stream ends after {found}"),
        None => format!("stream ends mid-frame after {found} samples"),
    })
}

fn is_end_of_data(error: &claxon::Error) -> bool {
    match error {
        claxon::Error::IoError(e) => e.kind() == std::io::ErrorKind::UnexpectedEof,
        claxon::Error::FormatError(message) => message.contains("more bytes"),
        _ => false,
    }
}

fn decode_wav(bytes: &[u8], max_samples: usize) -> Result<Audio, AudioProblem> {
    let corrupt = |e: hound::Error| AudioProblem::Corrupt {
        format: "WAV",
        detail: e.to_string(),
    };
    let reader = hound::WavReader::new(Cursor::new(bytes)).map_err(corrupt)?;
    let spec = reader.spec();
    if spec.channels != 1 {
        return Err(AudioProblem::NotMono {
            channels: spec.channels,
        });
    }
    readable_rate(spec.sample_rate)?;
    // hound takes the sample count from the data chunk's header; collecting its iterator would
    // reserve that much memory before reading a sample, so the room is bounded by the file.
    let capacity = reserve_for(u64::from(reader.len()), bytes.len(), max_samples);
    let samples: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Int if (1..=32).contains(&spec.bits_per_sample) => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            collect_bounded(
                reader.into_samples::<i32>().map(|s| s.map(|v| v as f32 * scale)),
                capacity,
                max_samples,
            )
            .map_err(|e| e.map_or(AudioProblem::TooLong, corrupt))?
        }
        hound::SampleFormat::Float => {
            let samples = collect_bounded(reader.into_samples::<f32>(), capacity, max_samples)
                .map_err(|e| e.map_or(AudioProblem::TooLong, corrupt))?;
            // A NaN or infinite sample would become features of silence or of nothing at all.
            if let Some(at) = samples.iter().position(|s| !s.is_finite()) {
                return Err(AudioProblem::Corrupt {
                    format: "WAV",
                    detail: format!("sample {at} is not a finite number"),
                });
            }
            samples
        }
        _ => {
            return Err(AudioProblem::UnsupportedFormat(format!(
                "{}-bit {:?}",
                spec.bits_per_sample, spec.sample_format
            )));
        }
    };
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

/// Collects decoded samples into room for `capacity`, stopping beyond `max_samples`
/// (`Err(None)`) or at the first decoding error (`Err(Some(e))`).
fn collect_bounded(
    samples: impl Iterator<Item = Result<f32, hound::Error>>,
    capacity: usize,
    max_samples: usize,
) -> Result<Vec<f32>, Option<hound::Error>> {
    let mut out = Vec::with_capacity(capacity);
    for sample in samples {
        if out.len() == max_samples {
            return Err(None);
        }
        out.push(sample.map_err(Some)?);
    }
    Ok(out)
}

/// Checks that audio is at the rate the models expect; corpora must not be resampled silently.
pub(crate) fn require_rate(audio: &Audio, expected: u32) -> Result<(), AudioProblem> {
    if audio.sample_rate == expected {
        Ok(())
    } else {
        Err(AudioProblem::WrongSampleRate {
            found: audio.sample_rate,
            expected,
        })
    }
}

impl Audio {
    /// Fails unless the audio is at `expected` Hz, naming `source_name`.
    pub fn require_sample_rate(&self, expected: u32, source_name: &str) -> Result<(), AudioError> {
        require_rate(self, expected).map_err(|problem| AudioError {
            source_name: source_name.to_string(),
            problem,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::test_wav::wav_bytes;

    #[test]
    fn decodes_mono_wav_scaled_to_unit_range() {
        let audio = decode_audio(&wav_bytes(16_000, 1, 1600), "a.wav").unwrap();
        assert_eq!(audio.sample_rate, 16_000);
        assert_eq!(audio.samples.len(), 1600);
        assert!((audio.samples[0] - (-5000.0 / 32768.0)).abs() < 1e-7);
    }

    #[test]
    fn stereo_wav_is_rejected_with_the_file_name() {
        let err = decode_audio(&wav_bytes(16_000, 2, 100), "stereo.wav").unwrap_err();
        assert!(matches!(err.problem, AudioProblem::NotMono { channels: 2 }));
        assert!(err.to_string().contains("stereo.wav"), "{err}");
    }

    #[test]
    fn wrong_rate_is_reported() {
        let audio = decode_audio(&wav_bytes(8_000, 1, 100), "slow.wav").unwrap();
        let err = audio.require_sample_rate(16_000, "slow.wav").unwrap_err();
        assert_eq!(err.to_string(), "slow.wav: sample rate 8000 Hz; expected 16000 Hz");
    }

    #[test]
    fn garbage_truncated_corrupt_and_empty_inputs_are_errors() {
        let flac = include_bytes!("../../../tests/data/tone.flac");
        assert_eq!(decode_audio(flac, "tone.flac").unwrap().samples.len(), 16_000);
        assert!(matches!(
            decode_audio(b"hello world", "x.bin").unwrap_err().problem,
            AudioProblem::UnknownFormat
        ));
        let cut = decode_audio(&flac[..flac.len() * 2 / 3], "cut.flac").unwrap_err();
        assert_eq!(
            cut.to_string(),
            "cut.flac: truncated FLAC: header promises 16000 samples, stream ends after 4096"
        );
        assert!(matches!(
            decode_audio(b"fLaC\0\0", "x.flac").unwrap_err().problem,
            AudioProblem::Truncated(_)
        ));
        let mut corrupt = flac.to_vec();
        corrupt[9000..9400].iter_mut().for_each(|b| *b ^= 0x5A);
        let err = decode_audio(&corrupt, "bad.flac").unwrap_err();
        assert!(matches!(err.problem, AudioProblem::Corrupt { .. }), "{err}");
        assert!(matches!(
            decode_audio(&wav_bytes(16_000, 1, 0), "e.wav").unwrap_err().problem,
            AudioProblem::Empty
        ));
    }

    /// A FLAC header promising 2^36 - 1 samples (its 36-bit field's largest value): decoding
    /// used to reserve room for them all (256 GiB) and abort the process.
    #[test]
    fn a_header_promising_more_samples_than_the_file_holds_allocates_nothing_for_them() {
        let mut flac = include_bytes!("../../../tests/data/tone.flac").to_vec();
        // STREAMINFO's total-sample count is the low 36 bits of the big-endian u64 at byte 18.
        flac[21] |= 0x0F;
        flac[22..26].fill(0xFF);
        let err = decode_audio(&flac, "liar.flac").unwrap_err();
        assert_eq!(
            err.to_string(),
            "liar.flac: truncated FLAC: header promises 68719476735 samples, stream ends after 16000"
        );
        // WAV's data chunk claiming 4 GiB of a file of 3 KB.
        let mut wav = wav_bytes(16_000, 1, 1600);
        assert_eq!(&wav[36..40], b"data");
        wav[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        let err = decode_audio(&wav, "liar.wav").unwrap_err();
        assert!(
            matches!(err.problem, AudioProblem::Corrupt { format: "WAV", .. }),
            "{err}"
        );
    }

    /// Rate 0 made resampling divide by zero; 2^31 Hz built a filter table of gigabytes; NaN
    /// samples became features of silence.
    #[test]
    fn impossible_rates_and_non_finite_samples_are_refused() {
        let mut wav = wav_bytes(16_000, 1, 100);
        for rate in [0u32, 999, 1_000_000_000] {
            wav[24..28].copy_from_slice(&rate.to_le_bytes());
            wav[28..32].copy_from_slice(&rate.wrapping_mul(2).to_le_bytes()); // bytes a second
            let err = decode_audio(&wav, "rate.wav").unwrap_err().to_string();
            assert!(
                err.contains(&format!("sample rate {rate} Hz (1 kHz to 384 kHz are read)")),
                "{err}"
            );
        }
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 16_000,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for sample in [0.1, f32::NAN, 0.2] {
            writer.write_sample(sample).unwrap();
        }
        writer.finalize().unwrap();
        let err = decode_audio(&bytes.into_inner(), "nan.wav").unwrap_err().to_string();
        assert_eq!(err, "nan.wav: corrupt WAV data: sample 1 is not a finite number");
    }

    #[test]
    fn decoding_stops_at_the_sample_bound_instead_of_exhausting_memory() {
        let flac = include_bytes!("../../../tests/data/tone.flac");
        let err = decode_audio_at_most(flac, "bomb.flac", 1000).unwrap_err();
        assert!(matches!(err.problem, AudioProblem::TooLong), "{err}");
        let err = decode_audio_at_most(&wav_bytes(16_000, 1, 1600), "long.wav", 1000).unwrap_err();
        assert!(matches!(err.problem, AudioProblem::TooLong), "{err}");
        assert_eq!(
            decode_audio_at_most(flac, "tone.flac", 16_000).unwrap().samples.len(),
            16_000
        );
    }
}
