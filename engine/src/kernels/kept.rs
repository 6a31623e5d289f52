//! The hashed dropout's test inside a kernel: `hashed_dropout::mix` and the keep decision,
//! computed where an element is used (u32 products wrap in WGSL, as `wrapping_mul` does).

use cubecl::prelude::*;

#[cube]
fn mix(value: u32) -> u32 {
    let mut x = value;
    x = x ^ (x >> 16u32);
    x *= 0x7feb_352du32;
    x = x ^ (x >> 15u32);
    x *= 0x846c_a68bu32;
    x ^ (x >> 16u32)
}

/// The mask's factor at `index`: `multiplier` if the element is kept, 0 if dropped.
#[cube]
pub(super) fn kept<F: Float>(index: u32, seed: u32, threshold: u32, multiplier: F) -> F {
    let mut factor = F::new(0.0);
    if (mix(mix(index) ^ seed) >> 8u32) < threshold {
        factor = multiplier;
    }
    factor
}
