//! Hashed randomness inside a kernel, computed where it is used (u32 products wrap in WGSL, as
//! `wrapping_mul` does): the dropout's keep decision (`hashed_dropout.rs`) and a relaxed gate
//! drawn from its logit with hashed logistic noise (`gate_relaxation.rs`, `GateDraw`).

use cubecl::prelude::*;

use super::activation::sigmoid;

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

/// The logistic draw at `index`: `gate_relaxation::logistic_draw`, the same bits of the hash.
#[cube]
fn logistic_draw<F: Float>(index: u32, seed: u32) -> F {
    let bits = mix(mix(index) ^ seed) >> 9u32;
    let u = F::cast_from(bits * 2u32 + 1u32) * F::new(1.0 / 16_777_216.0);
    u.ln() - (F::new(1.0) - u).ln()
}

/// `σ((n + a) / τ)` for the logit `a` and the draw at `index`: what a drawn gate's value and
/// slope are made of ([`relaxed_gate`], [`relaxed_slope`]).
#[cube]
pub(super) fn relaxed_sigmoid<F: Float>(logit: F, index: u32, seed: u32, inverse_temperature: F) -> F {
    sigmoid::<F>((logistic_draw::<F>(index, seed) + logit) * inverse_temperature)
}

/// The gate `clamp(s · stretch + shift, 0, 1)` from `s` = [`relaxed_sigmoid`].
#[cube]
pub(super) fn relaxed_gate<F: Float>(s: F, stretch: F, shift: F) -> F {
    let mut z = s * stretch + shift;
    if z < F::new(0.0) {
        z = F::new(0.0);
    }
    if z > F::new(1.0) {
        z = F::new(1.0);
    }
    z
}

/// dz/da: `stretch · s(1 − s) / τ` where the clamp passes the gradient (as burn's does, at the
/// bounds too), 0 where it cuts.
#[cube]
pub(super) fn relaxed_slope<F: Float>(s: F, stretch: F, shift: F, inverse_temperature: F) -> F {
    let v = s * stretch + shift;
    let mut slope = F::new(0.0);
    if v >= F::new(0.0) && v <= F::new(1.0) {
        slope = stretch * s * (F::new(1.0) - s) * inverse_temperature;
    }
    slope
}

/// A gate's value at `gate_at` (`row · units + unit`) and its slope dm/da there: a drawn gate's
/// relaxed sample from its logit `gate[unit]`, or a given gate's value with slope 1 (unused).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn gate_and_slope<F: Float>(
    gate: &Tensor<F>,
    unit: usize,
    gate_at: usize,
    draw_seed: u32,
    inverse_temperature: F,
    stretch: F,
    shift: F,
    #[comptime] drawn: bool,
) -> (F, F) {
    if drawn {
        let s = relaxed_sigmoid::<F>(gate[unit], gate_at as u32, draw_seed, inverse_temperature);
        (
            relaxed_gate::<F>(s, stretch, shift),
            relaxed_slope::<F>(s, stretch, shift, inverse_temperature),
        )
    } else {
        (gate[gate_at], F::new(1.0))
    }
}
