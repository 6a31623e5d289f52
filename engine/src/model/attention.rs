//! Multi-head self-attention with a learned relative-position bias per head.
//!
//! Position enters only as a bias on the attention logits, `bias[h, clamp(j - i)]`, never
//! through the query, key or value vectors. That keeps every query and value dimension
//! independent of the others, which the pruning methods need to delete them one by one.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::softmax;

#[derive(Config, Debug)]
pub struct RelPosSelfAttentionConfig {
    pub d_model: usize,
    pub num_heads: usize,
    /// Relative distances beyond ±this many frames share one bias.
    #[config(default = 64)]
    pub max_rel_distance: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
}

#[derive(Module, Debug)]
pub struct RelPosSelfAttention {
    norm: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    /// `[2R + 1, h]`: bias for each clipped relative distance and head.
    rel_bias: Param<Tensor<2>>,
    dropout: Dropout,
    num_heads: usize,
    max_rel_distance: usize,
}

impl RelPosSelfAttentionConfig {
    pub fn init(&self, device: &Device) -> RelPosSelfAttention {
        assert!(
            self.num_heads > 0 && self.d_model.is_multiple_of(self.num_heads),
            "d_model {} must split evenly into {} heads",
            self.d_model,
            self.num_heads
        );
        let linear = || LinearConfig::new(self.d_model, self.d_model).init(device);
        RelPosSelfAttention {
            norm: LayerNormConfig::new(self.d_model).init(device),
            query: linear(),
            key: linear(),
            value: linear(),
            output: linear(),
            rel_bias: Initializer::Zeros.init([2 * self.max_rel_distance + 1, self.num_heads], device),
            dropout: DropoutConfig::new(self.dropout).init(),
            num_heads: self.num_heads,
            max_rel_distance: self.max_rel_distance,
        }
    }
}

impl RelPosSelfAttention {
    /// # Shapes
    /// - `x`: `[b, s, d]`
    /// - `padding`: `[b, s]`, `true` on padded frames (never attended to)
    /// - returns `[b, s, d]` (the residual is added by the block)
    pub fn forward(&self, x: Tensor<3>, padding: Tensor<2, Bool>) -> Tensor<3> {
        let [b, s, d] = x.dims();
        let (h, k) = (self.num_heads, d / self.num_heads);
        let x = self.norm.forward(x);
        let split_heads = |t: Tensor<3>| t.reshape([b, s, h, k]).swap_dims(1, 2); // [b, h, s, k]
        let q = split_heads(self.query.forward(x.clone()));
        let key = split_heads(self.key.forward(x.clone()));
        let v = split_heads(self.value.forward(x));

        let logits = q.matmul(key.swap_dims(2, 3)).div_scalar((k as f64).sqrt()); // [b, h, s, s]
        let logits = logits + self.position_bias(s, &padding.device()).unsqueeze::<4>();
        let padded_keys = padding.reshape([b, 1, 1, s]).expand([b, h, s, s]);
        // A large finite value rather than -inf: a fully padded row then stays finite.
        let weights = softmax(logits.mask_fill(padded_keys, -1e9), 3);
        let context = self.dropout.forward(weights).matmul(v); // [b, h, s, k]
        let context = context.swap_dims(1, 2).reshape([b, s, d]); // [b, s, d]
        self.dropout.forward(self.output.forward(context))
    }

    /// `[h, s, s]` bias for every query/key pair.
    fn position_bias(&self, s: usize, device: &Device) -> Tensor<3> {
        let r = self.max_rel_distance as i64;
        let index: Vec<i64> = (0..s as i64)
            .flat_map(|i| (0..s as i64).map(move |j| (j - i).clamp(-r, r) + r))
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [s * s]), device);
        let bias = self.rel_bias.val().select(0, index); // [s·s, h]
        bias.reshape([s, s, self.num_heads]).permute([2, 0, 1]) // [h, s, s]
    }
}
