//! A batch of utterances as tensors on a device: what every forward pass takes, the training
//! step's (with SpecAugment) as well as inference's.

use burn::prelude::*;

use crate::audio::{FeatureStats, SpecAugmentConfig, spec_augment};
use crate::data::{Batch, ShapeBuckets, Utterance};
use crate::rng::SplitMix64;

/// A batch as tensors on a device.
pub struct Prepared {
    pub feats: Tensor<3>,
    pub targets: Tensor<2, Int>,
    pub batch: Batch,
}

/// Pads (to `buckets`) and normalises `utterances` (plus SpecAugment when `augment_seed` is
/// given) and moves them to `device`.
pub fn prepare_batch(
    utterances: &[&Utterance],
    stats: &FeatureStats,
    augment: Option<(&SpecAugmentConfig, u64)>,
    buckets: ShapeBuckets,
    device: &Device,
) -> Prepared {
    let num_bins = stats.num_bins();
    let mut rng = augment.map(|(_, seed)| SplitMix64::new(seed));
    let batch = Batch::from_utterances(utterances, num_bins, buckets, |feats| {
        stats.apply(feats);
        if let (Some((config, _)), Some(rng)) = (augment, rng.as_mut()) {
            spec_augment(feats, num_bins, config, rng);
        }
    });
    let (b, t, l) = (batch.len(), batch.frames, batch.tokens);
    let feats = Tensor::<3>::from_data(TensorData::new(batch.feats.clone(), [b, t, num_bins]), device);
    let targets = Tensor::<2, Int>::from_data(TensorData::new(batch.targets.clone(), [b, l]), device);
    Prepared { feats, targets, batch }
}
