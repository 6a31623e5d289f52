//! The bridge from gates (which know sites) to the model (which takes per-block masks).

use burn::prelude::*;

use crate::gates::{PerSite, SiteKind};
use crate::model::BlockMasks;

/// Training masks `[b, u]` per site → the model's `[b, 1, u]` block masks.
pub fn sampled_block_masks(sampled: Vec<PerSite<Tensor<2>>>) -> Vec<BlockMasks> {
    sampled
        .into_iter()
        .map(|sites| {
            block_masks(sites.map(|m| {
                m.map(|m| {
                    let [b, u] = m.dims();
                    m.reshape([b, 1, u])
                })
            }))
        })
        .collect()
}

/// Inference gate values `[u]` per site → the model's `[1, 1, u]` block masks.
pub fn deterministic_block_masks(values: Vec<PerSite<Tensor<1>>>) -> Vec<BlockMasks> {
    values
        .into_iter()
        .map(|sites| {
            block_masks(sites.map(|m| {
                m.map(|m| {
                    let [u] = m.dims();
                    m.reshape([1, 1, u])
                })
            }))
        })
        .collect()
}

fn block_masks(sites: PerSite<Tensor<3>>) -> BlockMasks {
    let [ffn1, query, value, conv, ffn2] = sites;
    debug_assert_eq!(SiteKind::ALL[4], SiteKind::Ffn2Hidden, "site order is forward order");
    BlockMasks {
        ffn1,
        query,
        value,
        conv,
        ffn2,
        modules: Default::default(),
    }
}
