//! Audio: decoding (WAV, FLAC), resampling to 16 kHz, Kaldi-compatible log-mel filterbank,
//! feature normalisation and SpecAugment. Pure Rust; builds for wasm32.

mod decode;
mod fbank;
mod flac_frames;
mod normalize;
mod probe;
mod resample;
mod specaugment;
#[cfg(test)]
pub(crate) mod test_wav;

pub use decode::{Audio, AudioError, AudioProblem, MAX_AUDIO_SAMPLES, decode_audio, read_audio_bytes, read_audio_file};
pub use fbank::{FbankConfig, fbank};
pub use normalize::FeatureStats;
pub use probe::{AudioHeader, probe_audio_file};
pub use resample::resample;
pub use specaugment::{SpecAugmentConfig, spec_augment};

/// The sample rate every model in Prunelab expects.
pub const SAMPLE_RATE: u32 = 16_000;
