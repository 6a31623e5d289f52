//! The Conformer encoder with a CTC head (Gulati et al. 2020, arXiv 2005.08100), written so
//! later pruning can resize every unit-bearing layer independently.
//!
//! Files run leaf to root: subsampling → feed_forward → attention → convolution → block →
//! conformer (the whole model and its presets).
//!
//! Dimension letters used in shape comments: `b` batch, `t` input frames, `s` subsampled frames,
//! `f` mel bins, `d` model width, `h` heads, `k` per-head width, `u` FFN hidden units, `v` vocab.

mod attention;
mod block;
mod config_check;
mod conformer;
mod convolution;
mod dropout;
mod feed_forward;
mod fingerprint;
mod head_layout;
mod module_output;
mod norm;
mod padding;
mod product;
mod resize;
mod subsampling;

pub use attention::{AttentionMasks, RelPosSelfAttention, RelPosSelfAttentionConfig};
pub use block::{BlockKeep, BlockMasks, BlockShape, ConformerBlock, ConformerBlockConfig, MODULES};
pub use config_check::check_keep_plan;
pub use conformer::{Conformer, ConformerConfig, ConformerOutput, Preset, RunningStats};
pub use convolution::{ConvModule, ConvModuleConfig};
pub use dropout::{seed_hashed_dropout, with_dropout_stream};
pub use feed_forward::{FeedForward, FeedForwardConfig};
pub use fingerprint::weights_fingerprint;
pub use module_output::{ModuleOutput, add_module_output};
pub use padding::{Padding, frame_mask};
pub use resize::KeptUnits;
pub use subsampling::{ConvSubsampling, ConvSubsamplingConfig};
