//! Dropout whose mask is a hash of the element's position, not a draw from a generator.
//!
//! A generator's mask is a tensor of its own: a kernel to draw it, memory to keep it for the
//! backward pass, a multiply to apply it. A hashed mask costs nothing of that: the kernel that
//! uses the output computes "is element `i` kept?" from `(seed, i)` where it needs it, and the
//! backward pass computes the same answer again. The host computes the same hash
//! ([`HashedDropout::mask`]) for the composed reference, so both paths drop the same elements.
//!
//! Plain data and host code, so the model builds without the `wgpu` feature too; the kernels'
//! copy of the hash is `kept.rs`.

/// One dropout mask: which elements survive and what a survivor is multiplied by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HashedDropout {
    /// Mixed once on the host ([`HashedDropout::new`]); the element's index is hashed with it.
    pub seed: u32,
    /// An element is kept when the top 24 bits of its hash are below this (`2^24`: always).
    pub threshold: u32,
    /// What a kept element is multiplied by (inverted dropout's `1 / keep`, times any constant
    /// weight the caller folds in).
    pub multiplier: f32,
}

/// 2^24: the hash's top 24 bits are compared with the threshold (exact in f32 and in u32).
const LEVELS: u32 = 1 << 24;

impl HashedDropout {
    /// Keeps each element with probability `keep` (rounded to a multiple of 2^-24) and
    /// multiplies the kept ones by `weight / keep`; `seed` picks the mask.
    pub fn new(seed: u64, keep: f64, weight: f32) -> Self {
        assert!(
            keep > 0.0 && keep <= 1.0,
            "a dropout keeps a share in (0, 1], not {keep}"
        );
        let folded = (seed ^ (seed >> 32)) as u32;
        Self {
            seed: mix(folded),
            threshold: (keep * f64::from(LEVELS)).round() as u32,
            multiplier: (f64::from(weight) / keep) as f32,
        }
    }

    /// No dropout: every element kept, multiplied by `weight`.
    pub fn none(weight: f32) -> Self {
        Self {
            seed: 0,
            threshold: LEVELS,
            multiplier: weight,
        }
    }

    /// Whether every element is kept (only the multiplier applies).
    pub fn drops_nothing(&self) -> bool {
        self.threshold >= LEVELS
    }

    /// Whether element `index` (row-major position in the tensor) survives.
    pub fn keeps(&self, index: u32) -> bool {
        (mix(mix(index) ^ self.seed) >> 8) < self.threshold
    }

    /// The mask of a tensor of `elements` as factors: the multiplier where kept, 0 elsewhere.
    pub fn mask(&self, elements: usize) -> Vec<f32> {
        (0..hashed_index_count(elements))
            .map(|i| if self.keeps(i) { self.multiplier } else { 0.0 })
            .collect()
    }
}

/// `elements` as the u32 the hash indexes them with; a tensor too large for that is refused
/// rather than masked with repeating indices (the host's mask and every kernel check here).
pub(super) fn hashed_index_count(elements: usize) -> u32 {
    u32::try_from(elements).expect("a hashed dropout indexes a tensor's elements with 32 bits")
}

/// A 32-bit integer hash with good avalanche (two xor-shift-multiply rounds, Wellons'
/// "lowbias32" constants). The kernels compute exactly this, with wrapping products.
pub(super) fn mix(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^ (x >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_share_and_the_mean_match_the_keep_probability() {
        let draw = HashedDropout::new(42, 0.9, 0.5);
        let mask = draw.mask(100_000);
        let kept = mask.iter().filter(|&&v| v != 0.0).count() as f64 / mask.len() as f64;
        // Binomial standard deviation at n = 1e5, p = 0.9: 0.00095; 5 of them.
        assert!((kept - 0.9).abs() < 0.005, "kept share {kept}");
        let mean = mask.iter().map(|&v| f64::from(v)).sum::<f64>() / mask.len() as f64;
        assert!(
            (mean - 0.5).abs() < 0.005,
            "inverted dropout keeps the mean weight: {mean}"
        );
        assert!(mask.iter().all(|&v| v == 0.0 || (v - 0.5 / 0.9).abs() < 1e-6));
    }

    #[test]
    fn seeds_give_different_masks_and_none_keeps_everything() {
        let a = HashedDropout::new(1, 0.5, 1.0).mask(4096);
        let b = HashedDropout::new(2, 0.5, 1.0).mask(4096);
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        // Two independent masks at p = 0.5 agree on about half the elements.
        assert!((1700..2400).contains(&same), "{same} of 4096 agree");
        assert_eq!(HashedDropout::new(1, 0.5, 1.0).mask(64), a[..64]);
        assert!(HashedDropout::none(0.5).mask(1000).iter().all(|&v| v == 0.5));
        assert!(HashedDropout::none(0.5).drops_nothing() && HashedDropout::new(9, 1.0, 1.0).drops_nothing());
        assert!(!HashedDropout::new(1, 0.5, 1.0).drops_nothing());
        assert!(HashedDropout::new(9, 1.0, 1.0).mask(1000).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn neighbouring_elements_are_not_correlated() {
        // Lag-1 agreement of the keep bits at p = 0.5 should be near one half.
        let draw = HashedDropout::new(7, 0.5, 1.0);
        let bits: Vec<bool> = (0..20_000).map(|i| draw.keeps(i)).collect();
        let agree = bits.windows(2).filter(|w| w[0] == w[1]).count() as f64 / (bits.len() - 1) as f64;
        assert!((agree - 0.5).abs() < 0.02, "lag-1 agreement {agree}");
    }
}
