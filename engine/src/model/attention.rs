//! Multi-head self-attention with a learned relative-position bias per head.
//!
//! Position enters only as a bias on the attention logits, `bias[h, clamp(j - i)]`, never
//! through the query, key or value vectors. That keeps every query and value dimension
//! independent of the others, which the pruning methods need to delete them one by one.
//!
//! After pruning, heads have their own query/key width and value width (possibly zero query
//! dimensions: the head then attends by position alone). The logit scale stays
//! `1/sqrt(d/h)` of the unpruned model so a pruned head computes what the gated head did.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, LayerNorm, Linear, LinearConfig};
use burn::prelude::*;

use burn::tensor::activation::softmax;

use super::dropout::{apply_hashed, hashed_draw};
use super::head_layout::PaddedHeads;
use super::module_output::ModuleOutput;
use super::norm::{layer_norm, layer_norm_init};
use super::padding::Padding;
use super::resize::{KeptUnits, Side, keep, param, resize_linear, scale_linear};
use crate::kernels::{self, HashedDropout, UnitGate};

#[derive(Config, Debug)]
pub struct RelPosSelfAttentionConfig {
    pub d_model: usize,
    pub num_heads: usize,
    /// Relative distances beyond ±this many frames share one bias.
    #[config(default = 64)]
    pub max_rel_distance: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Per-head query/key widths after pruning (`None`: `d / h` each).
    #[config(default = "None")]
    pub query_widths: Option<Vec<usize>>,
    /// Per-head value widths after pruning (`None`: `d / h` each). Every head needs at least one.
    #[config(default = "None")]
    pub value_widths: Option<Vec<usize>>,
}

#[derive(Module, Debug)]
pub struct RelPosSelfAttention {
    norm: LayerNorm,
    /// `None` when every head lost all its query dimensions (all attend by position alone).
    query: Option<Linear>,
    key: Option<Linear>,
    value: Linear,
    output: Linear,
    /// `[2R + 1, h]`: bias for each clipped relative distance and head.
    rel_bias: Param<Tensor<2>>,
    dropout: Dropout,
    max_rel_distance: usize,
    /// Width of an unpruned head, `d / h`: sets the logit scale.
    head_dim: usize,
    #[module(skip)]
    query_widths: Vec<usize>,
    #[module(skip)]
    value_widths: Vec<usize>,
}

impl RelPosSelfAttentionConfig {
    pub fn init(&self, device: &Device) -> RelPosSelfAttention {
        assert!(
            self.num_heads > 0 && self.d_model.is_multiple_of(self.num_heads),
            "d_model {} must split evenly into {} heads",
            self.d_model,
            self.num_heads
        );
        let head_dim = self.d_model / self.num_heads;
        let query_widths = self.query_widths.clone().unwrap_or(vec![head_dim; self.num_heads]);
        let value_widths = self.value_widths.clone().unwrap_or(vec![head_dim; self.num_heads]);
        assert!(
            query_widths.len() == value_widths.len() && !value_widths.is_empty(),
            "query and value widths must name the same heads"
        );
        assert!(
            value_widths.iter().all(|&w| w > 0),
            "a head without value dimensions must be removed, not kept"
        );
        let heads = value_widths.len();
        let (q_total, v_total): (usize, usize) = (query_widths.iter().sum(), value_widths.iter().sum());
        let linear = |i: usize, o: usize| LinearConfig::new(i, o).init(device);
        RelPosSelfAttention {
            norm: layer_norm_init(self.d_model, device),
            query: (q_total > 0).then(|| linear(self.d_model, q_total)),
            key: (q_total > 0).then(|| linear(self.d_model, q_total)),
            value: linear(self.d_model, v_total),
            output: linear(v_total, self.d_model),
            rel_bias: Initializer::Zeros.init([2 * self.max_rel_distance + 1, heads], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            max_rel_distance: self.max_rel_distance,
            head_dim,
            query_widths,
            value_widths,
        }
    }
}

/// Gates on the attention's unit vectors, each of `[b or 1, 1, width]`.
#[derive(Debug, Clone, Default)]
pub struct AttentionMasks {
    pub query: Option<UnitGate>,
    pub value: Option<UnitGate>,
}

impl RelPosSelfAttention {
    /// # Shapes
    /// - `x`: `[b, s, d]`
    /// - `padding`: of `[b, s]` frames (padded ones are never attended to)
    /// - returns `[b, s, d]` (the residual is added by the block)
    pub fn forward(&self, x: Tensor<3>, padding: &Padding, masks: AttentionMasks) -> Tensor<3> {
        self.output(x, padding, masks).value()
    }

    /// [`forward`](Self::forward) up to the output projection's matrix product: its bias and
    /// the output's dropout are left to the block (`model::add_module_output`).
    pub fn output(&self, x: Tensor<3>, padding: &Padding, masks: AttentionMasks) -> ModuleOutput<'_> {
        let [b, s, _] = x.dims();
        let x = layer_norm(&self.norm, x);
        // Pruned heads of unequal widths run padded to their block's widest head (see
        // `head_layout`); unpruned heads are already in that layout.
        let device = x.device();
        let (q_heads, v_heads) = (
            PaddedHeads::new(&self.query_widths, &device),
            PaddedHeads::new(&self.value_widths, &device),
        );
        let fused = kernels::fuses_on(&device);
        // The weights' dropout, hashed: inside the softmax's kernels on the fused path.
        let drop = hashed_draw(&self.dropout, &device, 1.0);
        let h = v_heads.heads;
        // On the fused path, where every head's query, key and value have one width, the three
        // projections are one operation that writes them side by side, and the per-head
        // products read them there.
        if let Some(packed) = fused.then(|| self.packed_projections(x.clone(), &masks)).flatten() {
            let scores = kernels::fused_packed_head_scores(packed.clone(), h);
            let weights = self.attention_weights(scores, padding, drop);
            return self.module_output(kernels::fused_packed_head_mix(weights, packed), &v_heads);
        }
        // A projection and its gate. On the fused path a gated projection's bias and gate are
        // one operation after the matrix product, its backward summing both gradients (and a
        // drawn gate drawn there); without a gate (the key's) burn's linear costs fewer
        // dispatches than that operation would.
        let project = |linear: &Linear, mask: Option<UnitGate>, heads: &PaddedHeads| match (&linear.bias, mask) {
            (Some(bias), Some(mask)) if fused => {
                let pre = heads.product_into(linear, x.clone());
                kernels::fused_bias_gate(pre, heads.spread_bias(bias.val()), heads.spread_unit_gate(mask))
            }
            (_, mask) => {
                let projected = heads.project_into(linear, x.clone());
                match mask {
                    Some(mask) => projected * heads.spread_gate(mask.values()),
                    None => projected,
                }
            }
        };
        // [b, s, h·wq] each; absent when no head has a query dimension left.
        let q = self.query.as_ref().map(|l| project(l, masks.query, &q_heads));
        let key = self.key.as_ref().map(|l| project(l, None, &q_heads));
        let v = project(&self.value, masks.value, &v_heads); // [b, s, h·wv]
        // On the fused path both products read and write the heads in the projections' layout
        // `[b, s, h·w]`; composed, each head is split out as `[b, h, s, w]` and merged back.
        let split_heads = |t: Tensor<3>, width: usize| t.reshape([b, s, h, width]).swap_dims(1, 2); // [b, h, s, w]
        let weights = match (q, key) {
            (Some(q), Some(key)) if fused => {
                self.attention_weights(kernels::fused_head_scores(q, key, h), padding, drop)
            }
            (Some(q), Some(key)) => {
                let scores = split_heads(q, q_heads.width).matmul(split_heads(key, q_heads.width).swap_dims(2, 3));
                self.attention_weights(scores, padding, drop)
            }
            _ => {
                // Every head attends by position alone.
                let bias = self.position_bias(s, &device).unsqueeze::<4>(); // [1, h, s, s]
                apply_hashed(masked_softmax(bias.expand([b, h, s, s]), padding.padded.clone()), drop)
            }
        }; // [b, h, s, s], dropped
        let context = if fused {
            kernels::fused_head_mix(weights, v)
        } else {
            let context = weights.matmul(split_heads(v, v_heads.width)); // [b, h, s, wv]
            context.swap_dims(1, 2).reshape([b, s, h * v_heads.width])
        };
        self.module_output(context, &v_heads)
    }

    /// The output projection's matrix product of the context `[b, s, h·wv]`, its bias and
    /// dropout left to the block.
    fn module_output(&self, context: Tensor<3>, v_heads: &PaddedHeads) -> ModuleOutput<'_> {
        ModuleOutput {
            input: context,
            weight: v_heads.weight_from(&self.output),
            bias: self.output.bias.as_ref().map(|b| b.val()),
            dropout: &self.dropout,
        }
    }

    /// The query, key and value side by side, `[b, s, 3·h·w]`, from one fused operation; `None`
    /// where the query and key are gone, the heads' widths differ (a cut block's: those run
    /// padded, `head_layout`), or a projection has no bias.
    fn packed_projections(&self, x: Tensor<3>, masks: &AttentionMasks) -> Option<Tensor<3>> {
        let (query, key) = (self.query.as_ref()?, self.key.as_ref()?);
        let width = self.value_widths[0];
        if self.query_widths.iter().chain(&self.value_widths).any(|&w| w != width) {
            return None;
        }
        let linears = [query, key, &self.value];
        let [bias_query, bias_key, bias_value] = linears.map(|l| l.bias.as_ref().map(|b| b.val()));
        Some(kernels::fused_attention_projection(
            x,
            linears.map(|l| l.weight.val()),
            [bias_query?, bias_key?, bias_value?],
            masks.query.clone(),
            masks.value.clone(),
        ))
    }

    /// The weights from the raw scores q·kᵀ `[b, h, s, s]`: scaled, plus the position bias, padded
    /// keys masked, softmax over keys. One fused operation where this thread's path and the
    /// device allow it (`kernels::fuses_on`), burn's composed ones otherwise.
    fn attention_weights(&self, scores: Tensor<4>, padding: &Padding, drop: HashedDropout) -> Tensor<4> {
        // The unpruned head width sets the scale, so a pruned head computes what the gated one did.
        let root = (self.head_dim as f64).sqrt();
        let device = scores.device();
        if kernels::fuses_on(&device) {
            let keep = padding.keep.clone();
            let scale = (1.0 / root) as f32;
            return kernels::fused_attention_softmax(scores, self.rel_bias.val(), keep, scale, drop);
        }
        let s = scores.dims()[2];
        let bias = self.position_bias(s, &device).unsqueeze::<4>(); // [1, h, s, s]
        apply_hashed(
            masked_softmax(scores.div_scalar(root) + bias, padding.padded.clone()),
            drop,
        )
    }

    /// `[h, s, s]` bias for every query/key pair (the composed path).
    fn position_bias(&self, s: usize, device: &Device) -> Tensor<3> {
        let r = self.max_rel_distance as i64;
        let index: Vec<i64> = (0..s as i64)
            .flat_map(|i| (0..s as i64).map(move |j| (j - i).clamp(-r, r) + r))
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [s * s]), device);
        let heads = self.value_widths.len();
        let bias = self.rel_bias.val().select(0, index); // [s·s, h]
        bias.reshape([s, s, heads]).permute([2, 0, 1]) // [h, s, s]
    }

    /// Per-head query/key widths.
    pub fn query_widths(&self) -> &[usize] {
        &self.query_widths
    }

    /// Per-head value widths.
    pub fn value_widths(&self) -> &[usize] {
        &self.value_widths
    }

    /// `[d]`: what the module outputs when every value dimension is gated off.
    pub fn output_bias(&self) -> Tensor<1> {
        let d = self.output.weight.dims()[1];
        self.output
            .bias
            .as_ref()
            .map_or_else(|| Tensor::zeros([d], &self.output.weight.device()), |b| b.val())
    }

    /// A copy keeping, per head, `query[h]` query/key dimensions and `value[h]` value dimensions
    /// (indices within the head). Heads with no value dimension left are dropped whole. Query
    /// scales fold into `W_Q` and `b_Q`, value scales into `W_V` and `b_V`; `module_scale`
    /// multiplies the output projection.
    pub fn pruned(&self, query: &[KeptUnits], value: &[KeptUnits], module_scale: f32) -> RelPosSelfAttention {
        let live: Vec<usize> = (0..value.len()).filter(|&h| !value[h].is_empty()).collect();
        let offsets = |widths: &[usize]| -> Vec<usize> {
            widths
                .iter()
                .scan(0, |acc, &w| Some(std::mem::replace(acc, *acc + w)))
                .collect()
        };
        let (q_offsets, v_offsets) = (offsets(&self.query_widths), offsets(&self.value_widths));
        let q_kept = KeptUnits::concat(
            live.iter()
                .map(|&h| query[h].shifted(q_offsets[h]))
                .collect::<Vec<_>>()
                .iter(),
        );
        let v_kept = KeptUnits::concat(
            live.iter()
                .map(|&h| value[h].shifted(v_offsets[h]))
                .collect::<Vec<_>>()
                .iter(),
        );
        let live_heads = KeptUnits {
            index: live.clone(),
            scale: vec![1.0; live.len()],
        };
        let output = resize_linear(
            &self.output,
            Some(Side {
                units: &v_kept,
                scaled: false,
            }),
            None,
        );
        let project = |linear: &Option<Linear>, scaled: bool| {
            let side = Side { units: &q_kept, scaled };
            linear
                .as_ref()
                .filter(|_| !q_kept.is_empty())
                .map(|l| resize_linear(l, None, Some(side)))
        };
        RelPosSelfAttention {
            norm: self.norm.clone(),
            query: project(&self.query, true),
            key: project(&self.key, false),
            value: resize_linear(
                &self.value,
                None,
                Some(Side {
                    units: &v_kept,
                    scaled: true,
                }),
            ),
            output: scale_linear(output, module_scale),
            rel_bias: param(keep(self.rel_bias.val(), 1, &live_heads, false)),
            dropout: self.dropout.clone(),
            max_rel_distance: self.max_rel_distance,
            head_dim: self.head_dim,
            query_widths: live.iter().map(|&h| query[h].len()).collect(),
            value_widths: live.iter().map(|&h| value[h].len()).collect(),
        }
    }

    /// `[Σq]` and `[Σv]`: magnitude scores of query dimensions (`‖W_Q[:, i]‖ · ‖W_K[:, i]‖`) and
    /// value dimensions (`‖W_V[:, i]‖ · ‖W_O[i, :]‖`).
    pub fn unit_norms(&self) -> (Tensor<1>, Tensor<1>) {
        let column_norms = |w: Tensor<2>| {
            let n = w.dims()[1];
            w.powf_scalar(2.0).sum_dim(0).sqrt().reshape([n])
        };
        let row_norms = |w: Tensor<2>| {
            let n = w.dims()[0];
            w.powf_scalar(2.0).sum_dim(1).sqrt().reshape([n])
        };
        let query = match (&self.query, &self.key) {
            (Some(q), Some(k)) => column_norms(q.weight.val()) * column_norms(k.weight.val()),
            _ => Tensor::zeros([0], &self.value.weight.device()),
        };
        let value = column_norms(self.value.weight.val()) * row_norms(self.output.weight.val());
        (query, value)
    }
}

/// Softmax over the keys of `logits` `[b, h, s, s]`, padded keys (`padding` `[b, s]`) left out.
fn masked_softmax(logits: Tensor<4>, padding: Tensor<2, Bool>) -> Tensor<4> {
    let shape = logits.dims();
    let [b, _, _, s] = shape;
    // A large finite value rather than -inf: a fully padded row then stays finite.
    let logits = logits.mask_fill(padding.reshape([b, 1, 1, s]).expand(shape), -1e9);
    softmax(logits, 3)
}
