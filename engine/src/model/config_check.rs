//! What makes a model configuration buildable. Configurations come from files (checkpoints,
//! exports) as well as from presets, so every invariant the modules' constructors assert is
//! checked here first, with an error naming the field, instead of a panic (a division by zero
//! for zero heads) or an allocation sized by a hostile number.

use crate::limits::{Bound, ConfigError, Limit, first_failure};

use super::{BlockKeep, BlockShape, ConformerConfig, KeptUnits};

/// Generous ranges: every preset sits far inside them; a value outside is a damaged or
/// hostile file, not a model anyone trained.
pub mod limit {
    use super::{Bound, Limit};

    const fn between(name: &'static str, low: f64, high: f64) -> Limit {
        Limit::new(name, Bound::Closed(low), Bound::Closed(high))
    }

    /// Two 3×3 stride-2 convolutions need at least 7 bins.
    pub const NUM_BINS: Limit = between("model num_bins", 7.0, 512.0);
    /// The CTC blank and at least one symbol.
    pub const VOCAB_SIZE: Limit = between("model vocab_size", 2.0, 65_536.0);
    pub const D_MODEL: Limit = between("model d_model", 1.0, 4096.0);
    pub const NUM_BLOCKS: Limit = between("model num_blocks", 1.0, 128.0);
    pub const NUM_HEADS: Limit = between("model num_heads", 1.0, 64.0);
    pub const D_FF: Limit = between("model d_ff", 1.0, 65_536.0);
    pub const CONV_KERNEL: Limit = between("model conv_kernel", 1.0, 255.0);
    pub const SUBSAMPLING_CHANNELS: Limit = between("model subsampling_channels", 1.0, 1024.0);
    pub const MAX_REL_DISTANCE: Limit = between("model max_rel_distance", 1.0, 4096.0);
}

impl ConformerConfig {
    /// Checks every dimension and, for a pruned model, every block's widths against the
    /// dense ones, so that [`ConformerConfig::init`] cannot fail.
    pub fn validate(&self) -> Result<(), ConfigError> {
        limit::NUM_BINS.check_count(self.num_bins)?;
        limit::VOCAB_SIZE.check_count(self.vocab_size)?;
        limit::D_MODEL.check_count(self.d_model)?;
        limit::NUM_BLOCKS.check_count(self.num_blocks)?;
        limit::NUM_HEADS.check_count(self.num_heads)?;
        limit::D_FF.check_count(self.d_ff)?;
        limit::CONV_KERNEL.check_count(self.conv_kernel)?;
        limit::SUBSAMPLING_CHANNELS.check_count(self.subsampling_channels)?;
        limit::MAX_REL_DISTANCE.check_count(self.max_rel_distance)?;
        first_failure([
            (
                self.d_model.is_multiple_of(self.num_heads),
                format!(
                    "model d_model {} must split evenly into {} heads",
                    self.d_model, self.num_heads
                ),
            ),
            (
                self.conv_kernel % 2 == 1,
                format!("model conv_kernel {} must be odd", self.conv_kernel),
            ),
        ])?;
        let Some(shapes) = &self.block_shapes else {
            return Ok(());
        };
        if shapes.len() != self.num_blocks {
            return Err(ConfigError(format!(
                "model block_shapes has {} entries for {} blocks",
                shapes.len(),
                self.num_blocks
            )));
        }
        shapes
            .iter()
            .enumerate()
            .try_for_each(|(block, shape)| self.check_block_shape(block, shape))
    }

    /// A pruned block keeps at most the dense widths, and every kept head has value width.
    fn check_block_shape(&self, block: usize, shape: &BlockShape) -> Result<(), ConfigError> {
        let head_dim = self.d_model / self.num_heads;
        let heads = shape.value_widths.len();
        let within = |widths: &[usize], low: usize| widths.iter().all(|&w| (low..=head_dim).contains(&w));
        first_failure([
            (
                shape.ffn1_hidden <= self.d_ff && shape.ffn2_hidden <= self.d_ff,
                format!("block {block}: feed-forward widths exceed d_ff {}", self.d_ff),
            ),
            (
                shape.query_widths.len() == heads && heads <= self.num_heads,
                format!(
                    "block {block}: {} query and {heads} value head widths for at most {} heads",
                    shape.query_widths.len(),
                    self.num_heads
                ),
            ),
            (
                within(&shape.query_widths, 0) && within(&shape.value_widths, 1),
                format!("block {block}: a head width is outside 1..={head_dim} (0 allowed for queries)"),
            ),
            (
                shape.conv_channels <= self.d_model,
                format!(
                    "block {block}: {} convolution channels exceed d_model {}",
                    shape.conv_channels, self.d_model
                ),
            ),
        ])
    }
}

/// Checks a pruning plan read from a file against the dense model it selects from: one plan
/// per block, one entry per head, every kept index inside its layer, ascending, with a finite
/// scale. Surgery indexes weights by these, so a bad plan must fail here, by name.
pub fn check_keep_plan(config: &ConformerConfig, plan: &[BlockKeep]) -> Result<(), ConfigError> {
    if plan.len() != config.num_blocks {
        return Err(ConfigError(format!(
            "the plan has {} blocks, the model {}",
            plan.len(),
            config.num_blocks
        )));
    }
    let head_dim = config.d_model / config.num_heads;
    for (block, keep) in plan.iter().enumerate() {
        let units = |what: &str, kept: &KeptUnits, width: usize| -> Result<(), ConfigError> {
            let ascending = kept.index.windows(2).all(|w| w[0] < w[1]);
            let inside = kept.index.last().is_none_or(|&last| last < width);
            let scaled = kept.scale.len() == kept.index.len() && kept.scale.iter().all(|s| s.is_finite());
            first_failure([(
                ascending && inside && scaled,
                format!(
                    "block {block}: kept {what} units must be ascending indices below {width}, each with a finite scale"
                ),
            )])
        };
        units("ffn1", &keep.ffn1, config.d_ff)?;
        units("ffn2", &keep.ffn2, config.d_ff)?;
        units("conv", &keep.conv, config.d_model)?;
        first_failure([
            (
                keep.query.len() == config.num_heads && keep.value.len() == config.num_heads,
                format!(
                    "block {block}: {} query and {} value head entries for {} heads",
                    keep.query.len(),
                    keep.value.len(),
                    config.num_heads
                ),
            ),
            (
                keep.modules.iter().all(|m| m.is_finite()),
                format!("block {block}: a module gate is not a finite number"),
            ),
        ])?;
        for (head, (query, value)) in keep.query.iter().zip(&keep.value).enumerate() {
            units(&format!("head {head} query"), query, head_dim)?;
            units(&format!("head {head} value"), value, head_dim)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::{BlockShape, Preset};

    #[test]
    fn presets_pass_and_each_impossible_dimension_is_named() {
        for preset in Preset::ALL {
            preset.config(80, 29).validate().unwrap();
        }
        let tiny = || Preset::Tiny.config(80, 29);
        type Breakage<T> = (fn(&mut T), &'static str);
        let cases: [Breakage<crate::model::ConformerConfig>; 8] = [
            (|c| c.num_heads = 0, "model num_heads 0 must be in [1, 64]"),
            (|c| c.num_heads = 5, "d_model 96 must split evenly into 5 heads"),
            (|c| c.num_blocks = 0, "model num_blocks 0"),
            (|c| c.conv_kernel = 14, "conv_kernel 14 must be odd"),
            (|c| c.num_bins = 3, "model num_bins 3"),
            (|c| c.d_model = 1 << 40, "model d_model"),
            (|c| c.vocab_size = 1, "model vocab_size 1"),
            (
                |c| c.block_shapes = Some(vec![]),
                "block_shapes has 0 entries for 6 blocks",
            ),
        ];
        for (break_it, message) in cases {
            let mut config = tiny();
            break_it(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(message), "{err} lacks {message:?}");
        }
    }

    #[test]
    fn pruned_shapes_must_fit_inside_the_dense_ones() {
        let mut config = Preset::Tiny.config(80, 29);
        let dense = BlockShape::dense(96, 4, 384);
        let mut shapes = vec![dense.clone(); 6];
        config.block_shapes = Some(shapes.clone());
        config.validate().unwrap();
        type Breakage<T> = (fn(&mut T), &'static str);
        let breakages: [Breakage<BlockShape>; 4] = [
            (|s| s.ffn1_hidden = 385, "feed-forward widths exceed d_ff 384"),
            (|s| s.value_widths.push(24), "4 query and 5 value head widths"),
            (|s| s.value_widths[1] = 0, "a head width is outside 1..=24"),
            (|s| s.conv_channels = 97, "97 convolution channels exceed d_model 96"),
        ];
        for (break_it, message) in breakages {
            shapes[2] = dense.clone();
            break_it(&mut shapes[2]);
            config.block_shapes = Some(shapes.clone());
            let err = config.validate().unwrap_err().to_string();
            assert!(
                err.contains("block 2") && err.contains(message),
                "{err} lacks {message:?}"
            );
        }
    }
}
