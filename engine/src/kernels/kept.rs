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
fn relaxed_sigmoid<F: Float>(logit: F, index: u32, seed: u32, inverse_temperature: F) -> F {
    sigmoid::<F>((logistic_draw::<F>(index, seed) + logit) * inverse_temperature)
}

/// The gate `clamp(s · stretch + shift, 0, 1)` from `s` = [`relaxed_sigmoid`].
#[cube]
fn relaxed_gate<F: Float>(s: F, stretch: F, shift: F) -> F {
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
fn relaxed_slope<F: Float>(s: F, stretch: F, shift: F, inverse_temperature: F) -> F {
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

/// Adds one row's gate gradient `row_sum` (summed over its frames) to the running `total` and
/// returns it: a drawn gate's times its slope; a given gate's as it is, and also written to
/// `grad_gate[batch · units + unit]` when each utterance has its own row (`stride` ≠ 0).
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn add_row_gate_grad<F: Float>(
    grad_gate: &mut Tensor<F>,
    total: F,
    row_sum: F,
    slope: F,
    batch: usize,
    unit: usize,
    units: usize,
    stride: usize,
    #[comptime] drawn: bool,
) -> F {
    let mut sum = total;
    if drawn {
        sum += row_sum * slope;
    } else {
        if stride != 0 {
            grad_gate[batch * units + unit] = row_sum;
        }
        sum += row_sum;
    }
    sum
}

/// Writes what is left of the gate's gradient after the rows: a drawn gate's logit gradient,
/// `total + pull · (a − c)`; a given gate shared by the batch (`stride` 0), `total`.
#[cube]
#[allow(clippy::too_many_arguments)]
pub(super) fn finish_gate_grad<F: Float>(
    grad_gate: &mut Tensor<F>,
    gate: &Tensor<F>,
    total: F,
    unit: usize,
    stride: usize,
    pull: f32,
    pull_target: f32,
    #[comptime] drawn: bool,
) {
    if drawn {
        grad_gate[unit] = total + F::cast_from(pull) * (gate[unit] - F::cast_from(pull_target));
    } else if stride == 0 {
        grad_gate[unit] = total;
    }
}
