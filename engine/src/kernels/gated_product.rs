//! A gated layer with its matrix product, forward, in one dispatch: `y = drop(act(x · W + b) ·
//! m)` for the feed-forward module's hidden layer (`swish_gate.rs` has the layer after a product
//! burn computed, and its backward pass, which this one shares). A unit computes a 4 × 4 block of
//! `h = x · W` (`product_pair::block_sums`) and applies the bias, the activation, the gate (given,
//! or drawn here from its logits) and the dropout to it; it also writes `h`, which the backward
//! pass reads. That leaves out the product's own dispatch.
//!
//! A drawn gate is drawn once for each utterance in the block (a block's four rows belong to
//! one utterance or two where an utterance has at least four frames, and to up to four otherwise:
//! then a row's gate is drawn for that row), rather than once per element.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::activation::{GateActivation, sigmoid};
use super::gate_relaxation::{GateDraw, draw_settings, gate_batch_stride};
use super::hashed_dropout::{HashedDropout, hashed_index_count};
use super::kept::{gate_and_slope, kept};
use super::launch::{empty_like, launch_shape, reshape};
use super::product_pair::{BLOCK, ScaleArgs, ScaleArgsLaunch, block_count, block_origin, block_sums};

/// One unit per `BLOCK` × `BLOCK` block of `h = input · weight` (`[rows, units]`): writes `h`
/// to `pre` and `drop(act(h + bias) · m)` to `output`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    gate: &Tensor<F>,
    output: &mut Tensor<F>,
    pre: &mut Tensor<F>,
    blocks: u32,
    unread: ScaleArgs,
    frames: u32,
    gate_batch_stride: u32,
    seed: u32,
    threshold: u32,
    multiplier: f32,
    draw_seed: u32,
    inverse_temperature: f32,
    stretch: f32,
    shift: f32,
    #[comptime] swish: bool,
    #[comptime] drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let unit = ABSOLUTE_POS;
    if unit >= blocks as usize {
        terminate!();
    }
    // The product's sums (no operand scaled: `unread` is not read).
    let sums = block_sums::<F>(input, weight, unit, gate, &unread, false, false, false);
    let (rows, units) = (input.shape(0), weight.shape(1));
    let (first_row, first_col) = block_origin(unit, units);
    let (frames, stride) = (frames as usize, gate_batch_stride as usize);
    let (inverse_temperature, stretch, shift) = (
        F::cast_from(inverse_temperature),
        F::cast_from(stretch),
        F::cast_from(shift),
    );
    let multiplier = F::cast_from(multiplier);
    // Each column's gate for the utterance of the block's current row, drawn again only when
    // the row's utterance changes.
    let mut gates = Array::<F>::new(BLOCK);
    // (No row's utterance is `rows`: the first row always draws.)
    let mut batch_drawn = rows;
    #[unroll]
    for i in 0..BLOCK {
        let row = first_row + i;
        let batch = row / frames;
        if batch != batch_drawn {
            #[unroll]
            for j in 0..BLOCK {
                let mut col = first_col + j;
                if col >= units {
                    col = units - 1;
                }
                let (m, _) = gate_and_slope::<F>(
                    gate,
                    col,
                    batch * stride + col,
                    draw_seed,
                    inverse_temperature,
                    stretch,
                    shift,
                    drawn,
                );
                gates[j] = m;
            }
            batch_drawn = batch;
        }
        #[unroll]
        for j in 0..BLOCK {
            let col = first_col + j;
            if row < rows && col < units {
                let at = row * units + col;
                let h = sums[i * BLOCK + j];
                pre[at] = h;
                let z = h + bias[col];
                let activated = if swish { z * sigmoid::<F>(z) } else { z };
                output[at] = activated * gates[j] * kept::<F>(at as u32, seed, threshold, multiplier);
            }
        }
    }
}

/// `drop(act(input · weight + bias) · gate)` for `input` `[b, s, d]` and `weight` `[d, u]`, the
/// gate its values or, when `drawn`, its logits `[u]`; and `input · weight` (`[b, s, u]`), which
/// the backward pass (`swish_gate::backward`) reads.
pub(super) fn forward(
    input: CubeTensor,
    weight: CubeTensor,
    bias: CubeTensor,
    gate: CubeTensor,
    activation: GateActivation,
    dropout: HashedDropout,
    drawn: Option<GateDraw>,
) -> (CubeTensor, CubeTensor) {
    let (input, bias, gate) = (into_contiguous(input), into_contiguous(bias), into_contiguous(gate));
    let [batches, frames, d] = input.shape().dims::<3>();
    let units = weight.shape()[1];
    let rows = batches * frames;
    let stride = gate_batch_stride(batches, units, gate.shape()[0], drawn);
    let (draw_seed, relaxation) = draw_settings(drawn);
    hashed_index_count(rows * units);
    let shape = Shape::new([batches, frames, units]);
    let (output, pre) = (empty_like(&input, shape.clone()), empty_like(&input, shape));
    let blocks = block_count([rows, units]);
    let (count, dim) = launch_shape(&input, blocks);
    let dtype = dtype_to_storage_type(input.dtype);
    forward_kernel::launch(
        &input.client.clone(),
        count,
        dim,
        reshape(input, [rows, d]).into_tensor_arg(),
        weight.into_tensor_arg(),
        bias.into_tensor_arg(),
        gate.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        pre.clone().into_tensor_arg(),
        blocks as u32,
        ScaleArgsLaunch::new(0, 0, 0, 0, 0.0),
        frames as u32,
        stride as u32,
        dropout.seed,
        dropout.threshold,
        dropout.multiplier,
        draw_seed,
        relaxation.inverse_temperature,
        relaxation.stretch,
        relaxation.shift,
        activation == GateActivation::Swish,
        drawn.is_some(),
        dtype,
    );
    (output, pre)
}
