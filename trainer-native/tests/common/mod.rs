//! Helpers shared by the CLI test files.

use std::path::Path;

/// A WAV file of quiet pseudo-random noise (16-bit PCM), `seconds` long.
pub fn write_wav(path: &Path, rate: u32, channels: u16, seconds: f32) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    let mut state = 12345u32;
    for _ in 0..(rate as f32 * seconds) as usize * channels as usize {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        writer.write_sample(((state >> 16) as i16) / 8).unwrap();
    }
    writer.finalize().unwrap();
}
