//! The bridge from gates (which know sites) to the model (which takes per-block masks).

use crate::gates::{BlockGateValues, GateLayout};
use crate::model::{BlockMasks, ConformerConfig};

/// The sizes the gates of a model of `config` need.
pub fn gate_layout(config: &ConformerConfig) -> GateLayout {
    GateLayout {
        blocks: config.num_blocks,
        d_model: config.d_model,
        num_heads: config.num_heads,
        d_ff: config.d_ff,
        conv_kernel: config.conv_kernel,
    }
}

/// Gate values (of `[rows, 1, u]` per site, `[4]` per block's modules) → the model's block
/// masks (the same unit gates, and `[1, 1, 1]` per module).
pub fn block_masks(values: Vec<BlockGateValues>) -> Vec<BlockMasks> {
    values
        .into_iter()
        .map(|block| {
            let [ffn1, query, value, conv, ffn2] = block.sites;
            let modules = match block.modules {
                Some(z) => std::array::from_fn(|i| Some(z.clone().narrow(0, i, 1).reshape([1, 1, 1]))),
                None => Default::default(),
            };
            BlockMasks {
                ffn1,
                query,
                value,
                conv,
                ffn2,
                modules,
                ffn_masks_are_dropout: false,
            }
        })
        .collect()
}
