//! The attention's query, key and value projections as one operation: one matrix product with
//! the three weights side by side, then each column's bias and the query's and value's gates,
//! writing the packed `[b, s, 3·h·w]` that the per-head products read (`packed_heads.rs`).
//!
//! Separately, each projection is a product, its bias and gate (one kernel each way for the
//! gated two, an add and a reduction for the key), and in the backward pass two products per
//! projection and two adds joining the input's three gradients: ~17 kernels a block. Here the
//! forward pass is three (packing the weights, the product, the bias and gates) and the
//! backward three (the bias and gates, the input's product, the weights' product, whose three
//! blocks are the weights' gradients as views: `packed_weights.rs`; a fourth kernel unpacks them
//! where the layout does not allow views); the biases' gradients are views of the first
//! kernel's output.
//!
//! With `z = x·W + b` (kept from the forward pass, so the bias is not needed again) and `m` the
//! column's gate (1 for the key): `y = z · m`, `dz = dy · m`, `db = Σ_rows dz`, `dm` and a drawn
//! gate's logit gradient as in `swish_gate.rs`, `dx = dz·Wᵀ`, `dW = xᵀ·dz`.

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Shape, TensorMetadata};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::flat_pack::{view, view_start_after};
use super::gate_relaxation::{GateDraw, GateRelaxation, gate_batch_stride};
use super::kept::{add_row_gate_grad, finish_gate_grad, gate_and_slope};
use super::launch::{empty_like, launch_shape, reshape};
use super::packed_weights::{input_and_weight_grads, pack};

/// How the query's or the value's gate reaches the projection: none, its values
/// `[batch or 1, 1, units]`, or its logits `[units]` with the draw made in the kernels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ProjectionGate {
    Ungated,
    Values,
    Drawn(GateDraw),
}

/// The gates of the two gated projections (the key has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProjectionGates {
    pub query: ProjectionGate,
    pub value: ProjectionGate,
}

impl ProjectionGate {
    pub fn is_gated(self) -> bool {
        self != Self::Ungated
    }

    fn draw(self) -> Option<GateDraw> {
        match self {
            Self::Drawn(draw) => Some(draw),
            _ => None,
        }
    }
}

/// One gate's settings as the kernels read them: `[seed, batch stride]` and
/// `[1/τ, stretch, shift, pull, pull target]`.
fn gate_settings(gate: ProjectionGate, batches: usize, units: usize, value_rows: usize) -> ([u32; 2], [f32; 5]) {
    let stride = match gate {
        ProjectionGate::Ungated => 0,
        _ => gate_batch_stride(batches, units, value_rows, gate.draw()),
    };
    let (seed, r) = gate
        .draw()
        .map_or((0, GateRelaxation::default()), |d| (d.seed, d.relaxation));
    (
        [seed, stride as u32],
        [r.inverse_temperature, r.stretch, r.shift, r.pull, r.pull_target],
    )
}

/// The gate's value and slope for `unit` of utterance `batch`, from the gate's `[seed, batch
/// stride]` and `[1/τ, stretch, shift]` (as [`gate_settings`] lays them out at `first`, 0 for
/// the query, 1 for the value): 1 where the part is ungated.
#[cube]
#[allow(clippy::too_many_arguments)]
fn part_gate<F: Float>(
    gate: &Tensor<F>,
    unit: usize,
    batch: usize,
    ints: &Sequence<u32>,
    floats: &Sequence<f32>,
    #[comptime] first: usize,
    #[comptime] gated: bool,
    #[comptime] drawn: bool,
) -> (F, F) {
    let mut value = F::new(1.0);
    let mut slope = F::new(1.0);
    if gated {
        let seed = *ints.index(comptime!(first * 2));
        let stride = *ints.index(comptime!(first * 2 + 1));
        let inverse_temperature = F::cast_from(*floats.index(comptime!(first * 5)));
        let stretch = F::cast_from(*floats.index(comptime!(first * 5 + 1)));
        let shift = F::cast_from(*floats.index(comptime!(first * 5 + 2)));
        let gate_at = batch * stride as usize + unit;
        let (m, s) = gate_and_slope::<F>(gate, unit, gate_at, seed, inverse_temperature, stretch, shift, drawn);
        value = m;
        slope = s;
    }
    (value, slope)
}

/// `kept::add_row_gate_grad` for the gate of part `first` (0 query, 1 value), with its stride
/// from the settings.
#[cube]
#[allow(clippy::too_many_arguments)]
fn add_part_gate_grad<F: Float>(
    grad_gate: &mut Tensor<F>,
    total: F,
    row_sum: F,
    slope: F,
    batch: usize,
    unit: usize,
    units: usize,
    ints: &Sequence<u32>,
    #[comptime] first: usize,
    #[comptime] drawn: bool,
) -> F {
    let stride = *ints.index(comptime!(first * 2 + 1)) as usize;
    add_row_gate_grad::<F>(grad_gate, total, row_sum, slope, batch, unit, units, stride, drawn)
}

/// `kept::finish_gate_grad` for the gate of part `first` (0 query, 1 value), with its stride
/// and pull from the settings.
#[cube]
#[allow(clippy::too_many_arguments)]
fn finish_part_gate_grad<F: Float>(
    grad_gate: &mut Tensor<F>,
    gate: &Tensor<F>,
    total: F,
    unit: usize,
    ints: &Sequence<u32>,
    floats: &Sequence<f32>,
    #[comptime] first: usize,
    #[comptime] drawn: bool,
) {
    let stride = *ints.index(comptime!(first * 2 + 1)) as usize;
    let pull = *floats.index(comptime!(first * 5 + 3));
    let target = *floats.index(comptime!(first * 5 + 4));
    finish_gate_grad::<F>(grad_gate, gate, total, unit, stride, pull, target, drawn);
}

/// One unit per utterance and packed column, walking the frames: `z = pre + b` written back
/// into `pre`, and `z · m` into `output`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float>(
    pre: &mut Tensor<F>,
    bias_query: &Tensor<F>,
    bias_key: &Tensor<F>,
    bias_value: &Tensor<F>,
    gate_query: &Tensor<F>,
    gate_value: &Tensor<F>,
    output: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    width: u32,
    ints: Sequence<u32>,
    floats: Sequence<f32>,
    #[comptime] query_gated: bool,
    #[comptime] query_drawn: bool,
    #[comptime] value_gated: bool,
    #[comptime] value_drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let (frames, width) = (frames as usize, width as usize);
    let columns = 3 * width;
    let unit = ABSOLUTE_POS as usize;
    if unit >= batches as usize * columns {
        terminate!();
    }
    let (batch, column) = (unit / columns, unit % columns);
    let (part, index) = (column / width, column % width);
    let mut bias = bias_key[index];
    let mut m = F::new(1.0);
    if part == 0 {
        bias = bias_query[index];
        let (value, _) = part_gate::<F>(
            gate_query,
            index,
            batch,
            &ints,
            &floats,
            0usize,
            query_gated,
            query_drawn,
        );
        m = value;
    }
    if part == 2 {
        bias = bias_value[index];
        let (value, _) = part_gate::<F>(
            gate_value,
            index,
            batch,
            &ints,
            &floats,
            1usize,
            value_gated,
            value_drawn,
        );
        m = value;
    }
    for frame in 0..frames {
        let at = (batch * frames + frame) * columns + column;
        let z = pre[at] + bias;
        pre[at] = z;
        output[at] = z * m;
    }
}

/// One unit per packed column, walking utterances and frames: `dz` (written after the three
/// bias parts), the column's bias gradient, and its gate's (per utterance, shared, or the
/// logit's with the pull) into the query's or the value's gate gradient.
#[cube(launch)]
#[allow(clippy::too_many_arguments, clippy::collapsible_if)]
fn backward_kernel<F: Float>(
    grad: &Tensor<F>,
    z: &Tensor<F>,
    gate_query: &Tensor<F>,
    gate_value: &Tensor<F>,
    grad_out: &mut Tensor<F>,
    grad_gate_query: &mut Tensor<F>,
    grad_gate_value: &mut Tensor<F>,
    batches: u32,
    frames: u32,
    width: u32,
    part_stride: u32,
    ints: Sequence<u32>,
    floats: Sequence<f32>,
    #[comptime] query_gated: bool,
    #[comptime] query_drawn: bool,
    #[comptime] value_gated: bool,
    #[comptime] value_drawn: bool,
    #[define(F)] _dtype: ElemType,
) {
    let (frames, width, part_stride) = (frames as usize, width as usize, part_stride as usize);
    let columns = 3 * width;
    let column = ABSOLUTE_POS as usize;
    if column >= columns {
        terminate!();
    }
    let (part, index) = (column / width, column % width);
    let dz_start = 3 * part_stride;
    let mut sum_bias = F::new(0.0);
    let mut sum_gate = F::new(0.0);
    for batch in 0..batches as usize {
        let mut m = F::new(1.0);
        let mut slope = F::new(1.0);
        if part == 0 {
            let (value, s) = part_gate::<F>(
                gate_query,
                index,
                batch,
                &ints,
                &floats,
                0usize,
                query_gated,
                query_drawn,
            );
            m = value;
            slope = s;
        }
        if part == 2 {
            let (value, s) = part_gate::<F>(
                gate_value,
                index,
                batch,
                &ints,
                &floats,
                1usize,
                value_gated,
                value_drawn,
            );
            m = value;
            slope = s;
        }
        let mut sum_gate_batch = F::new(0.0);
        for frame in 0..frames {
            let at = (batch * frames + frame) * columns + column;
            let dy = grad[at];
            let dz = dy * m;
            grad_out[dz_start + at] = dz;
            sum_bias += dz;
            sum_gate_batch += dy * z[at];
        }
        if query_gated {
            if part == 0 {
                let total = sum_gate;
                sum_gate = add_part_gate_grad::<F>(
                    grad_gate_query,
                    total,
                    sum_gate_batch,
                    slope,
                    batch,
                    index,
                    width,
                    &ints,
                    0usize,
                    query_drawn,
                );
            }
        }
        if value_gated {
            if part == 2 {
                let total = sum_gate;
                sum_gate = add_part_gate_grad::<F>(
                    grad_gate_value,
                    total,
                    sum_gate_batch,
                    slope,
                    batch,
                    index,
                    width,
                    &ints,
                    1usize,
                    value_drawn,
                );
            }
        }
    }
    grad_out[part * part_stride + index] = sum_bias;
    if query_gated {
        if part == 0 {
            finish_part_gate_grad::<F>(
                grad_gate_query,
                gate_query,
                sum_gate,
                index,
                &ints,
                &floats,
                0usize,
                query_drawn,
            );
        }
    }
    if value_gated {
        if part == 2 {
            finish_part_gate_grad::<F>(
                grad_gate_value,
                gate_value,
                sum_gate,
                index,
                &ints,
                &floats,
                1usize,
                value_drawn,
            );
        }
    }
}

/// Both gates' settings as the two kernels take them.
fn sequences(
    gates: ProjectionGates,
    batches: usize,
    width: usize,
    query: &CubeTensor,
    value: &CubeTensor,
) -> (SequenceArg<u32>, SequenceArg<f32>) {
    let (mut ints, mut floats) = (SequenceArg::new(), SequenceArg::new());
    for (gate, values) in [(gates.query, query), (gates.value, value)] {
        let (i, f) = gate_settings(gate, batches, width, values.shape()[0]);
        i.into_iter().for_each(|x| ints.push(x));
        f.into_iter().for_each(|x| floats.push(x));
    }
    (ints, floats)
}

/// The packed projections `[b, s, 3w]` of `input` `[b, s, d]`, with what the backward pass
/// keeps: `z` (before the gates) and the packed weights `[d, 3w]`. `gate_query` and
/// `gate_value` are read only where `gates` says they are gated.
pub(super) fn forward(
    input: CubeTensor,
    weights: [CubeTensor; 3],
    biases: [CubeTensor; 3],
    gate_query: CubeTensor,
    gate_value: CubeTensor,
    gates: ProjectionGates,
) -> (CubeTensor, CubeTensor, CubeTensor) {
    let [batches, frames, d] = input.shape().dims::<3>();
    let packed_weights = pack(weights);
    let width = packed_weights.shape()[1] / 3;
    let rows = reshape(into_contiguous(input), [batches * frames, d]);
    let z = reshape(
        CubeBackend::float_matmul(rows, packed_weights.clone()),
        [batches, frames, 3 * width],
    );
    let z = into_contiguous(z);
    let [bias_query, bias_key, bias_value] = biases.map(into_contiguous);
    let (gate_query, gate_value) = (into_contiguous(gate_query), into_contiguous(gate_value));
    let (ints, floats) = sequences(gates, batches, width, &gate_query, &gate_value);
    let output = empty_like(&z, z.shape());
    let (count, dim) = launch_shape(&z, batches * 3 * width);
    let dtype = dtype_to_storage_type(z.dtype);
    forward_kernel::launch(
        &z.client.clone(),
        count,
        dim,
        z.clone().into_tensor_arg(),
        bias_query.into_tensor_arg(),
        bias_key.into_tensor_arg(),
        bias_value.into_tensor_arg(),
        gate_query.into_tensor_arg(),
        gate_value.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        width as u32,
        ints,
        floats,
        gates.query.is_gated(),
        gates.query.draw().is_some(),
        gates.value.is_gated(),
        gates.value.draw().is_some(),
        dtype,
    );
    (output, z, packed_weights)
}

/// The gradients of a packed projection, in its inputs' order.
pub(super) struct ProjectionGrads {
    pub input: CubeTensor,
    pub weights: [CubeTensor; 3],
    pub biases: [CubeTensor; 3],
    /// Unwritten where that part is ungated.
    pub gate_query: CubeTensor,
    pub gate_value: CubeTensor,
}

/// The gradients from the packed output's (`grad` `[b, s, 3w]`), with what [`forward`] kept.
pub(super) fn backward(
    grad: CubeTensor,
    input: CubeTensor,
    z: CubeTensor,
    packed_weights: CubeTensor,
    gate_query: CubeTensor,
    gate_value: CubeTensor,
    gates: ProjectionGates,
) -> ProjectionGrads {
    let (grad, z) = (into_contiguous(grad), into_contiguous(z));
    let (gate_query, gate_value) = (into_contiguous(gate_query), into_contiguous(gate_value));
    let [batches, frames, columns] = z.shape().dims::<3>();
    let (width, rows) = (columns / 3, batches * frames);
    // Each part's bias gradient, and `dz` after the three, starts where a view may.
    let part_stride = view_start_after(width);
    let grad_out = empty_like(&z, Shape::new([3 * part_stride + rows * columns]));
    let grad_gate_query = empty_like(&gate_query, gate_query.shape());
    let grad_gate_value = empty_like(&gate_value, gate_value.shape());
    let (ints, floats) = sequences(gates, batches, width, &gate_query, &gate_value);
    let (count, dim) = launch_shape(&z, columns);
    let dtype = dtype_to_storage_type(z.dtype);
    backward_kernel::launch(
        &z.client.clone(),
        count,
        dim,
        grad.into_tensor_arg(),
        z.into_tensor_arg(),
        gate_query.into_tensor_arg(),
        gate_value.into_tensor_arg(),
        grad_out.clone().into_tensor_arg(),
        grad_gate_query.clone().into_tensor_arg(),
        grad_gate_value.clone().into_tensor_arg(),
        batches as u32,
        frames as u32,
        width as u32,
        part_stride as u32,
        ints,
        floats,
        gates.query.is_gated(),
        gates.query.draw().is_some(),
        gates.value.is_gated(),
        gates.value.draw().is_some(),
        dtype,
    );
    let dz = reshape(view(grad_out.clone(), 3 * part_stride, rows * columns), [rows, columns]);
    let d = input.shape()[2];
    let input_rows = reshape(into_contiguous(input), [rows, d]);
    let (grad_input, weights) = input_and_weight_grads(input_rows, dz, packed_weights);
    ProjectionGrads {
        input: reshape(grad_input, [batches, frames, d]),
        weights,
        biases: std::array::from_fn(|part| view(grad_out.clone(), part * part_stride, width)),
        gate_query: grad_gate_query,
        gate_value: grad_gate_value,
    }
}
