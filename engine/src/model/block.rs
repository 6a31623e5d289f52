//! One Conformer block: x + ½·FFN(x) → + MHSA → + Conv → + ½·FFN → LayerNorm.
//!
//! After pruning, any of the four modules may be gone. A module removed by a whole-module mask
//! contributed nothing; one whose every unit was pruned still added a constant (its output
//! bias), which the block keeps as a row of `removed_outputs` so the smaller model stays exact.

use burn::module::Param;
use burn::nn::LayerNorm;
use burn::prelude::*;

use serde::{Deserialize, Serialize};

use crate::kernels::UnitGate;

use super::attention::AttentionMasks;
use super::module_output::{ModuleOutput, add_module_output};
use super::norm::{layer_norm, layer_norm_init};
use super::padding::Padding;
use super::resize::{KeptUnits, param};
use super::{
    ConvModule, ConvModuleConfig, FeedForward, FeedForwardConfig, RelPosSelfAttention, RelPosSelfAttentionConfig,
};

/// The four modules of a block, in forward order (index into module masks and `removed_outputs`).
pub const MODULES: [&str; 4] = ["ffn1", "attention", "conv", "ffn2"];

/// Widths of one block; zero (or no heads) means the module was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockShape {
    pub ffn1_hidden: usize,
    /// Per-head query/key widths of the heads that remain.
    pub query_widths: Vec<usize>,
    /// Per-head value widths of the heads that remain (empty: attention removed).
    pub value_widths: Vec<usize>,
    pub conv_channels: usize,
    pub ffn2_hidden: usize,
}

impl BlockShape {
    /// The shape of an unpruned block.
    pub fn dense(d_model: usize, num_heads: usize, d_ff: usize) -> Self {
        let head = d_model / num_heads;
        Self {
            ffn1_hidden: d_ff,
            query_widths: vec![head; num_heads],
            value_widths: vec![head; num_heads],
            conv_channels: d_model,
            ffn2_hidden: d_ff,
        }
    }

    /// Whether each module is still there, in [`MODULES`] order.
    pub fn present(&self) -> [bool; 4] {
        [
            self.ffn1_hidden > 0,
            !self.value_widths.is_empty(),
            self.conv_channels > 0,
            self.ffn2_hidden > 0,
        ]
    }
}

#[derive(Config, Debug)]
pub struct ConformerBlockConfig {
    pub d_model: usize,
    pub num_heads: usize,
    pub d_ff: usize,
    pub conv_kernel: usize,
    #[config(default = 64)]
    pub max_rel_distance: usize,
    #[config(default = 0.1)]
    pub dropout: f64,
    /// Widths after pruning (`None`: dense).
    #[config(default = "None")]
    pub shape: Option<BlockShape>,
}

#[derive(Module, Debug)]
pub struct ConformerBlock {
    pub ffn1: Option<FeedForward>,
    pub attention: Option<RelPosSelfAttention>,
    pub conv: Option<ConvModule>,
    pub ffn2: Option<FeedForward>,
    norm: LayerNorm,
    /// `[4, d]`, only when a module was removed: the constant each removed module still adds.
    removed_outputs: Option<Param<Tensor<2>>>,
}

impl ConformerBlockConfig {
    pub fn init(&self, device: &Device) -> ConformerBlock {
        let shape = self
            .shape
            .clone()
            .unwrap_or_else(|| BlockShape::dense(self.d_model, self.num_heads, self.d_ff));
        let ffn = |hidden: usize| {
            (hidden > 0).then(|| {
                FeedForwardConfig::new(self.d_model, hidden)
                    .with_dropout(self.dropout)
                    .init(device)
            })
        };
        let [_, has_attention, _, _] = shape.present();
        ConformerBlock {
            ffn1: ffn(shape.ffn1_hidden),
            attention: has_attention.then(|| {
                RelPosSelfAttentionConfig::new(self.d_model, self.num_heads)
                    .with_max_rel_distance(self.max_rel_distance)
                    .with_dropout(self.dropout)
                    .with_query_widths(Some(shape.query_widths.clone()))
                    .with_value_widths(Some(shape.value_widths.clone()))
                    .init(device)
            }),
            conv: (shape.conv_channels > 0).then(|| {
                ConvModuleConfig::new(self.d_model, shape.conv_channels, self.conv_kernel)
                    .with_dropout(self.dropout)
                    .init(device)
            }),
            ffn2: ffn(shape.ffn2_hidden),
            norm: layer_norm_init(self.d_model, device),
            removed_outputs: shape
                .present()
                .contains(&false)
                .then(|| param(Tensor::zeros([4, self.d_model], device))),
        }
    }
}

/// Gates for one block's forward pass. Unit masks are of `[b or 1, 1, units]` (values, or drawn
/// by the fused layer that uses them, `kernels::UnitGate`); module masks `[b or 1, 1, 1]`
/// multiply a module's whole (weighted) output.
#[derive(Debug, Clone, Default)]
pub struct BlockMasks {
    pub ffn1: Option<UnitGate>,
    pub query: Option<UnitGate>,
    pub value: Option<UnitGate>,
    pub conv: Option<UnitGate>,
    pub ffn2: Option<UnitGate>,
    pub modules: [Option<Tensor<3>>; 4],
    /// The FFN hidden masks are adaptive-dropout samples that stand in for the hidden layer's
    /// standard dropout (training only; see `FeedForward::forward_gated`).
    pub ffn_masks_are_dropout: bool,
}

/// What surgery keeps of one block (indices into the dense block).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockKeep {
    pub ffn1: KeptUnits,
    /// Per head, query dimensions within the head.
    pub query: Vec<KeptUnits>,
    /// Per head, value dimensions within the head.
    pub value: Vec<KeptUnits>,
    pub conv: KeptUnits,
    pub ffn2: KeptUnits,
    /// Deterministic whole-module gate values in [`MODULES`] order (0 removes the module).
    pub modules: [f32; 4],
}

impl ConformerBlock {
    /// # Shapes
    /// - `x`: `[b, s, d]`, `padding` of `[b, s]` → `[b, s, d]`
    pub fn forward(&self, x: Tensor<3>, padding: &Padding, masks: &BlockMasks) -> Tensor<3> {
        let [m1, ma, mc, m2] = masks.modules.clone();
        let replaced = masks.ffn_masks_are_dropout;
        let out = self
            .ffn1
            .as_ref()
            .map(|f| f.output(x.clone(), masks.ffn1.clone(), replaced));
        let x = self.add(x, 0, out, 0.5, m1, padding);
        let attention_masks = AttentionMasks {
            query: masks.query.clone(),
            value: masks.value.clone(),
        };
        let out = self
            .attention
            .as_ref()
            .map(|a| a.output(x.clone(), padding, attention_masks));
        let x = self.add(x, 1, out, 1.0, ma, padding);
        let out = self
            .conv
            .as_ref()
            .map(|c| c.output(x.clone(), padding, masks.conv.clone()));
        let x = self.add(x, 2, out, 1.0, mc, padding);
        let out = self
            .ffn2
            .as_ref()
            .map(|f| f.output(x.clone(), masks.ffn2.clone(), replaced));
        let x = self.add(x, 3, out, 0.5, m2, padding);
        layer_norm(&self.norm, x)
    }

    /// Residual add of module `slot`'s output at `weight`, gated by `module_mask`, or of its
    /// constant when the module is gone.
    fn add(
        &self,
        x: Tensor<3>,
        slot: usize,
        output: Option<ModuleOutput>,
        weight: f32,
        module_mask: Option<Tensor<3>>,
        padding: &Padding,
    ) -> Tensor<3> {
        match (output, &self.removed_outputs) {
            (Some(output), _) => add_module_output(x, output, weight, module_mask, padding),
            (None, Some(constants)) => {
                let d = x.dims()[2];
                x + constants.val().narrow(0, slot, 1).reshape([1, 1, d])
            }
            (None, None) => x,
        }
    }

    /// A physically smaller copy that computes what this block computes under the deterministic
    /// gates described by `keep`.
    pub fn pruned(&self, keep: &BlockKeep) -> ConformerBlock {
        let d = self.norm.gamma.dims()[0];
        let device = self.norm.gamma.device();
        // Modules already gone keep their constants (pruning a pruned block).
        let mut constants: Vec<Tensor<1>> = match &self.removed_outputs {
            Some(c) => (0..4).map(|i| c.val().narrow(0, i, 1).reshape([d])).collect(),
            None => vec![Tensor::zeros([d], &device); 4],
        };
        let [z1, za, zc, z2] = keep.modules;
        let ffn = |module: &Option<FeedForward>, kept: &KeptUnits, z: f32, constant: &mut Tensor<1>| {
            let module = module.as_ref()?;
            if z == 0.0 {
                return None;
            }
            if kept.is_empty() {
                *constant = module.output_bias().mul_scalar(0.5 * z);
                return None;
            }
            Some(module.pruned(kept, z))
        };
        let ffn1 = ffn(&self.ffn1, &keep.ffn1, z1, &mut constants[0]);
        let ffn2 = ffn(&self.ffn2, &keep.ffn2, z2, &mut constants[3]);
        let attention = self.attention.as_ref().and_then(|a| {
            if za == 0.0 {
                return None;
            }
            if keep.value.iter().all(KeptUnits::is_empty) {
                constants[1] = a.output_bias().mul_scalar(za);
                return None;
            }
            Some(a.pruned(&keep.query, &keep.value, za))
        });
        let conv = self.conv.as_ref().and_then(|c| {
            if zc == 0.0 {
                return None;
            }
            if keep.conv.is_empty() {
                constants[2] = c.output_bias().mul_scalar(zc);
                return None;
            }
            Some(c.pruned(&keep.conv, zc))
        });
        let present = [ffn1.is_some(), attention.is_some(), conv.is_some(), ffn2.is_some()];
        ConformerBlock {
            ffn1,
            attention,
            conv,
            ffn2,
            norm: self.norm.clone(),
            removed_outputs: present
                .contains(&false)
                .then(|| param(Tensor::stack::<2>(constants, 0))),
        }
    }

    /// The widths this block has now.
    pub fn shape(&self) -> BlockShape {
        BlockShape {
            ffn1_hidden: self.ffn1.as_ref().map_or(0, FeedForward::hidden_units),
            query_widths: self.attention.as_ref().map_or(vec![], |a| a.query_widths().to_vec()),
            value_widths: self.attention.as_ref().map_or(vec![], |a| a.value_widths().to_vec()),
            conv_channels: self.conv.as_ref().map_or(0, ConvModule::channels),
            ffn2_hidden: self.ffn2.as_ref().map_or(0, FeedForward::hidden_units),
        }
    }
}
