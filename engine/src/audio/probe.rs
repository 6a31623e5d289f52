//! Reading an audio file's header without decoding it: sample rate, channels and length.
//!
//! Indexing a 960-hour corpus must not decode 281k files, yet batching by duration needs every
//! length up front; FLAC's STREAMINFO block and WAV's `fmt`/`data` chunks give it for a few
//! hundred bytes read.

use std::io::BufReader;
use std::path::Path;

use super::{AudioError, AudioProblem, MAX_AUDIO_SAMPLES};

/// What a file's header promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioHeader {
    pub sample_rate: u32,
    pub channels: u16,
    /// Samples per channel.
    pub samples: u64,
}

/// Reads the header of the WAV or FLAC file at `path` and checks it is mono at `sample_rate`
/// with at least one sample. Truncation after the header is only found by decoding.
pub fn probe_audio_file(path: &Path, sample_rate: u32) -> Result<AudioHeader, AudioError> {
    let fail = |problem: AudioProblem| AudioError {
        source_name: path.display().to_string(),
        problem,
    };
    let header = read_header(path).map_err(fail)?;
    if header.channels != 1 {
        return Err(fail(AudioProblem::NotMono {
            channels: header.channels,
        }));
    }
    if header.sample_rate != sample_rate {
        return Err(fail(AudioProblem::WrongSampleRate {
            found: header.sample_rate,
            expected: sample_rate,
        }));
    }
    if header.samples == 0 {
        return Err(fail(AudioProblem::Empty));
    }
    if header.samples > MAX_AUDIO_SAMPLES as u64 {
        return Err(fail(AudioProblem::TooLong));
    }
    Ok(header)
}

fn read_header(path: &Path) -> Result<AudioHeader, AudioProblem> {
    // Opening a FIFO would wait for a writer forever.
    crate::bounded_read::regular_file(path).map_err(|e| AudioProblem::Refused(e.problem))?;
    let mut file = std::fs::File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut magic = [0u8; 12];
    let got = std::io::Read::read(&mut file, &mut magic)?;
    std::io::Seek::rewind(&mut file)?;
    let reader = BufReader::with_capacity(4096, file);
    if magic[..got.min(4)] == *b"fLaC" {
        let flac = claxon::FlacReader::new(reader).map_err(|e| AudioProblem::Corrupt {
            format: "FLAC",
            detail: e.to_string(),
        })?;
        let info = flac.streaminfo();
        let samples = info
            .samples
            .ok_or_else(|| AudioProblem::UnsupportedFormat("FLAC header does not give the length".into()))?;
        return Ok(AudioHeader {
            sample_rate: info.sample_rate,
            channels: info.channels as u16,
            samples,
        });
    }
    if got >= 12 && magic[..4] == *b"RIFF" && magic[8..12] == *b"WAVE" {
        let wav = hound::WavReader::new(reader).map_err(|e| AudioProblem::Corrupt {
            format: "WAV",
            detail: e.to_string(),
        })?;
        let spec = wav.spec();
        // WAV is uncompressed: a data chunk that claims more than the file holds is cut short.
        let claimed_bytes = u64::from(wav.len()) * u64::from(spec.bits_per_sample.div_ceil(8));
        if claimed_bytes > file_len {
            return Err(AudioProblem::Corrupt {
                format: "WAV",
                detail: format!("the data chunk claims {claimed_bytes} bytes, the file has {file_len}"),
            });
        }
        return Ok(AudioHeader {
            sample_rate: spec.sample_rate,
            channels: spec.channels,
            samples: u64::from(wav.duration()),
        });
    }
    Err(AudioProblem::UnknownFormat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(path: &Path, rate: u32, channels: u16, frames: usize) {
        std::fs::write(path, crate::audio::test_wav::wav_bytes(rate, channels, frames)).unwrap();
    }

    #[test]
    fn reads_lengths_and_rejects_what_training_cannot_use() {
        let dir = std::env::temp_dir().join(format!("prunelab-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.wav");
        wav(&good, 16_000, 1, 12_345);
        assert_eq!(probe_audio_file(&good, 16_000).unwrap().samples, 12_345);

        let cases = [
            ("slow.wav", 8_000, 1, 800, "8000 Hz"),
            ("stereo.wav", 16_000, 2, 800, "2 channels"),
            ("empty.wav", 16_000, 1, 0, "no samples"),
        ];
        for (name, rate, channels, frames, expected) in cases {
            let path = dir.join(name);
            wav(&path, rate, channels, frames);
            let err = probe_audio_file(&path, 16_000).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
        let junk = dir.join("junk.flac");
        std::fs::write(&junk, b"fLaC\0\0").unwrap();
        let err = probe_audio_file(&junk, 16_000).unwrap_err().to_string();
        assert!(err.contains("junk.flac") && err.contains("corrupt FLAC"), "{err}");
        let err = probe_audio_file(&dir.join("absent.flac"), 16_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.flac") && err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Lengths the index would trust for batching: a FLAC header's 36-bit count at its largest,
    /// and a WAV data chunk claiming 4 GiB in a file of a few KB.
    #[test]
    fn headers_promising_impossible_lengths_are_refused() {
        let dir = std::env::temp_dir().join(format!("prunelab-probe-liars-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut flac = include_bytes!("../../../tests/data/tone.flac").to_vec();
        flac[21] |= 0x0F;
        flac[22..26].fill(0xFF);
        std::fs::write(dir.join("liar.flac"), flac).unwrap();
        let err = probe_audio_file(&dir.join("liar.flac"), 16_000)
            .unwrap_err()
            .to_string();
        assert!(err.contains("liar.flac") && err.contains("more than the"), "{err}");
        let mut wav = crate::audio::test_wav::wav_bytes(16_000, 1, 1600);
        wav[40..44].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        std::fs::write(dir.join("liar.wav"), wav).unwrap();
        let err = probe_audio_file(&dir.join("liar.wav"), 16_000).unwrap_err().to_string();
        assert!(
            err.contains("liar.wav") && err.contains("claims 4294967280 bytes"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
