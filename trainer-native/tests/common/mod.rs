//! Helpers shared by the CLI test files (each uses some of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// A fresh, empty directory for one test, unique to this test binary's process. It is removed
/// when the test passes; a failing test keeps it (its path is printed) so the files can be read.
/// Without this the suite left ~170 MB under the temporary directory on every run.
pub fn scratch(name: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("prunelab-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

pub struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
