//! Log-mel filterbank with Kaldi's conventions (`compute-fbank-feats` defaults), so features
//! match the ones LibriSpeech recipes were tuned on:
//! 25 ms frames every 10 ms (`snip_edges`), per-frame DC removal, pre-emphasis 0.97, Povey window,
//! zero-padding to a power of two, power spectrum, triangular mel filters (Kaldi's mel scale,
//! 20 Hz to Nyquist), natural log floored at `f32::EPSILON`. No dither: evaluation must be
//! deterministic, and training adds SpecAugment instead.
//!
//! Samples are scaled to 16-bit range first, as Kaldi reads integer PCM.

use realfft::RealFftPlanner;
use serde::{Deserialize, Serialize};

/// Filterbank settings; the defaults are Kaldi's (with 80 bins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FbankConfig {
    pub sample_rate: u32,
    /// Number of mel bins.
    pub num_bins: usize,
    pub frame_length_ms: f64,
    pub frame_shift_ms: f64,
    pub preemphasis: f64,
    /// Lowest filter edge in Hz.
    pub low_freq: f64,
    /// Highest filter edge in Hz; `<= 0` means Nyquist plus this value (Kaldi's convention).
    pub high_freq: f64,
}

impl Default for FbankConfig {
    fn default() -> Self {
        Self {
            sample_rate: 16_000,
            num_bins: 80,
            frame_length_ms: 25.0,
            frame_shift_ms: 10.0,
            preemphasis: 0.97,
            low_freq: 20.0,
            high_freq: 0.0,
        }
    }
}

impl FbankConfig {
    pub fn frame_length(&self) -> usize {
        (f64::from(self.sample_rate) * self.frame_length_ms / 1000.0).round() as usize
    }

    pub fn frame_shift(&self) -> usize {
        (f64::from(self.sample_rate) * self.frame_shift_ms / 1000.0).round() as usize
    }

    /// Feature frames per second of audio (100 at the default 10 ms shift): the one place the
    /// frame rate is known, for anything that turns seconds into frames or back.
    pub fn frames_per_second(&self) -> f64 {
        1000.0 / self.frame_shift_ms
    }

    /// Frames in `seconds` of audio, unrounded.
    pub fn frames_in(&self, seconds: f64) -> f64 {
        seconds * self.frames_per_second()
    }

    /// Frames produced from `num_samples` samples (Kaldi `snip_edges = true`).
    pub fn num_frames(&self, num_samples: usize) -> usize {
        let length = self.frame_length();
        if num_samples < length {
            0
        } else {
            1 + (num_samples - length) / self.frame_shift()
        }
    }
}

/// Log-mel filterbank of `samples` (in [-1, 1], at `config.sample_rate`).
/// Returns `num_frames × num_bins` values, row-major (frame by frame).
pub fn fbank(samples: &[f32], config: &FbankConfig) -> Vec<f32> {
    let frame_length = config.frame_length();
    let shift = config.frame_shift();
    let fft_len = frame_length.next_power_of_two();
    let num_frames = config.num_frames(samples.len());
    let window = povey_window(frame_length);
    let filters = MelFilters::new(config, fft_len);
    let fft = RealFftPlanner::<f64>::new().plan_fft_forward(fft_len);
    let mut frame = fft.make_input_vec();
    let mut spectrum = fft.make_output_vec();
    let mut power = vec![0.0f64; fft_len / 2 + 1];
    let mut out = Vec::with_capacity(num_frames * config.num_bins);

    for f in 0..num_frames {
        let start = f * shift;
        // Kaldi reads 16-bit PCM as integers: scale [-1, 1] samples back to that range.
        for (dst, &s) in frame.iter_mut().zip(&samples[start..start + frame_length]) {
            *dst = f64::from(s) * 32768.0;
        }
        let mean = frame[..frame_length].iter().sum::<f64>() / frame_length as f64;
        frame[..frame_length].iter_mut().for_each(|x| *x -= mean);
        // Pre-emphasis runs backwards so each sample uses its un-emphasised predecessor;
        // the first sample is emphasised against itself (Kaldi's choice).
        for i in (1..frame_length).rev() {
            frame[i] -= config.preemphasis * frame[i - 1];
        }
        frame[0] -= config.preemphasis * frame[0];
        frame[..frame_length].iter_mut().zip(&window).for_each(|(x, w)| *x *= w);
        frame[frame_length..].iter_mut().for_each(|x| *x = 0.0);

        fft.process(&mut frame, &mut spectrum)
            .expect("FFT buffers are sized by the planner");
        for (p, c) in power.iter_mut().zip(&spectrum) {
            *p = c.norm_sqr();
        }
        out.extend(
            filters
                .apply(&power)
                .map(|energy| energy.max(f64::from(f32::EPSILON)).ln() as f32),
        );
    }
    out
}

/// Povey's window: a Hann window raised to 0.85 (Kaldi `window_type = povey`).
fn povey_window(length: usize) -> Vec<f64> {
    let denominator = (length - 1) as f64;
    (0..length)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / denominator).cos()).powf(0.85))
        .collect()
}

fn mel(hz: f64) -> f64 {
    1127.0 * (1.0 + hz / 700.0).ln()
}

/// Triangular filters, equally spaced on the mel scale, stored sparsely (first bin + weights).
struct MelFilters {
    filters: Vec<(usize, Vec<f64>)>,
}

impl MelFilters {
    fn new(config: &FbankConfig, fft_len: usize) -> Self {
        let nyquist = 0.5 * f64::from(config.sample_rate);
        let high = if config.high_freq > 0.0 {
            config.high_freq
        } else {
            nyquist + config.high_freq
        };
        let (mel_low, mel_high) = (mel(config.low_freq), mel(high));
        let delta = (mel_high - mel_low) / (config.num_bins + 1) as f64;
        let bin_width = f64::from(config.sample_rate) / fft_len as f64;
        // Kaldi uses the first fft_len/2 bins; the Nyquist bin never gets weight.
        let filters = (0..config.num_bins)
            .map(|b| {
                let left = mel_low + b as f64 * delta;
                let center = left + delta;
                let right = center + delta;
                let weights: Vec<(usize, f64)> = (0..fft_len / 2)
                    .filter_map(|i| {
                        let m = mel(bin_width * i as f64);
                        (m > left && m < right).then(|| {
                            let w = if m <= center {
                                (m - left) / (center - left)
                            } else {
                                (right - m) / (right - center)
                            };
                            (i, w)
                        })
                    })
                    .collect();
                let first = weights.first().map_or(0, |&(i, _)| i);
                (first, weights.into_iter().map(|(_, w)| w).collect())
            })
            .collect();
        Self { filters }
    }

    fn apply<'a>(&'a self, power: &'a [f64]) -> impl Iterator<Item = f64> + 'a {
        self.filters
            .iter()
            .map(move |(first, weights)| weights.iter().zip(&power[*first..]).map(|(w, p)| w * p).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_follows_snip_edges() {
        let c = FbankConfig::default();
        assert_eq!((c.frame_length(), c.frame_shift()), (400, 160));
        assert_eq!(c.num_frames(399), 0);
        assert_eq!(c.num_frames(400), 1);
        assert_eq!(c.num_frames(16_000), 98);
        assert_eq!(fbank(&vec![0.1; 16_000], &c).len(), 98 * 80);
    }

    #[test]
    fn silence_hits_the_floor_and_a_tone_lands_in_its_band() {
        let c = FbankConfig::default();
        let floor = f32::EPSILON.ln();
        assert!(fbank(&vec![0.0; 800], &c).iter().all(|&v| (v - floor).abs() < 1e-6));

        let tone: Vec<f32> = (0..1600)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let feats = fbank(&tone, &c);
        let first_frame = &feats[..80];
        let loudest = first_frame
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        // 1 kHz is mel 1000: bins are ~35.5 mel apart starting at mel(20) = 31.7, so bin ~26.
        assert!((25..=27).contains(&loudest), "loudest bin {loudest}");
    }
}
