//! WAV bytes for tests: a sawtooth at any rate and channel count, written by hound (an
//! encoder independent of the decoder under test).

use std::io::Cursor;

/// `frames` frames of a 100-sample sawtooth (±5000), every channel alike.
pub(crate) fn wav_bytes(rate: u32, channels: u16, frames: usize) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut cursor, spec).expect("a WAV header fits in memory");
    for i in 0..frames * channels as usize {
        writer
            .write_sample(((i % 100) as i16 - 50) * 100)
            .expect("samples fit in memory");
    }
    writer.finalize().expect("the WAV is finished in memory");
    cursor.into_inner()
}
