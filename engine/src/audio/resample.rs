//! Band-limited resampling by windowed-sinc interpolation.
//!
//! Quality is what a front end needs (about -60 dB stop band), not mastering grade; it is
//! used to bring user audio to 16 kHz, never on the training corpus.

/// Zero crossings of the sinc kept on each side of the interpolation point.
const HALF_TAPS: f64 = 16.0;

/// Resamples `samples` from `from_rate` to `to_rate`.
///
/// Polyphase: with `to / from = up / down` in lowest terms, output sample `n` sits at input
/// position `n·down / up`, whose fractional part takes only `up` values. The filter taps for
/// each of those phases are computed once, so each output sample costs one dot product.
pub fn resample(samples: &[f32], from_rate: u32, to_rate: u32) -> Vec<f32> {
    if from_rate == to_rate || samples.is_empty() {
        return samples.to_vec();
    }
    let divisor = gcd(from_rate, to_rate);
    let (up, down) = ((to_rate / divisor) as usize, (from_rate / divisor) as usize);
    let ratio = up as f64 / down as f64;
    // Cut off at the lower Nyquist frequency, slightly early to leave room for the window.
    let cutoff = 0.95 * ratio.min(1.0);
    let half_width = HALF_TAPS / cutoff; // in input samples
    let reach = half_width.ceil() as isize;
    let phases: Vec<Vec<f32>> = (0..up)
        .map(|phase| {
            let frac = phase as f64 / up as f64;
            (-reach..=reach + 1)
                .map(|j| {
                    let x = j as f64 - frac;
                    (cutoff * sinc(cutoff * x) * blackman(x / half_width)) as f32
                })
                .collect()
        })
        .collect();
    let out_len = (samples.len() as f64 * ratio).round() as usize;
    (0..out_len)
        .map(|n| {
            let position = n * down;
            let (base, phase) = ((position / up) as isize, position % up);
            let first = base - reach;
            let taps = &phases[phase];
            // Clip the tap window to the signal; samples outside it count as silence.
            let start = (-first).max(0) as usize;
            let end = (taps.len() as isize).min(samples.len() as isize - first).max(0) as usize;
            (start..end)
                .map(|i| taps[i] * samples[(first + i as isize) as usize])
                .sum()
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
    }
}

/// Blackman window on `[-1, 1]`.
fn blackman(x: f64) -> f64 {
    if x.abs() >= 1.0 {
        return 0.0;
    }
    let phase = std::f64::consts::PI * (x + 1.0);
    0.42 - 0.5 * phase.cos() + 0.08 * (2.0 * phase).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, seconds: f64) -> Vec<f32> {
        let n = (f64::from(rate) * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32)
            .collect()
    }

    #[test]
    fn upsampling_a_tone_matches_the_tone_at_the_new_rate() {
        let out = resample(&tone(440.0, 8_000, 0.5), 8_000, 16_000);
        let expected = tone(440.0, 16_000, 0.5);
        assert_eq!(out.len(), expected.len());
        // Away from the edges (where the filter runs out of input) the error is small.
        let worst = out[400..7600]
            .iter()
            .zip(&expected[400..7600])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(worst < 2e-3, "max error {worst}");
    }

    #[test]
    fn downsampling_removes_content_above_the_new_nyquist() {
        // 11 kHz cannot exist at 16 kHz; it must be filtered out, not folded to 5 kHz.
        let out = resample(&tone(11_000.0, 44_100, 0.2), 44_100, 16_000);
        let rms = (out[500..2700].iter().map(|v| v * v).sum::<f32>() / 2200.0).sqrt();
        assert!(rms < 0.01, "alias rms {rms}");
    }
}
