//! The checkpoint format.
//!
//! ```text
//! magic "PLCKPT01"   8 bytes   (the digits are the container generation)
//! version u32                  header schema version, currently 1
//! header_len u64
//! header JSON                  config, feature stats, step, section lengths
//! model                        burnpack bytes
//! optimizer                    burnpack bytes (may be empty)
//! ```
//! Everything is validated on load; any mismatch is an error naming the file.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::FeatureStats;
use crate::model::{Conformer, Preset};
use crate::train::{TrainConfig, TrainerState};

const MAGIC: &[u8; 8] = b"PLCKPT01";
const VERSION: u32 = 1;
const PREFIX_LEN: usize = 8 + 4 + 8;

#[derive(Serialize, Deserialize)]
struct Header {
    config: TrainConfig,
    stats: FeatureStats,
    step: usize,
    skipped_steps: usize,
    model_len: u64,
    optimizer_len: u64,
}

/// Why a checkpoint could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{name}: not a Prunelab checkpoint (bad magic bytes)")]
    BadMagic { name: String },
    #[error("{name}: checkpoint version {found} is not supported (this build reads version {VERSION})")]
    UnsupportedVersion { name: String, found: u32 },
    #[error("{name}: checkpoint is truncated ({detail})")]
    Truncated { name: String, detail: String },
    #[error("{name}: checkpoint header is malformed: {detail}")]
    BadHeader { name: String, detail: String },
    #[error("{name}: {detail}")]
    BadWeights { name: String, detail: String },
    #[error("{name}: checkpoint holds a `{found}` model, but a `{expected}` model was asked for")]
    WrongPreset {
        name: String,
        found: &'static str,
        expected: &'static str,
    },
}

/// Serialises a trainer state.
pub fn encode_checkpoint(state: &TrainerState) -> Vec<u8> {
    let header = Header {
        config: state.config.clone(),
        stats: state.stats.clone(),
        step: state.step,
        skipped_steps: state.skipped_steps,
        model_len: state.model.len() as u64,
        optimizer_len: state.optimizer.len() as u64,
    };
    let header = serde_json::to_vec(&header).expect("checkpoint header serialises");
    let mut out = Vec::with_capacity(PREFIX_LEN + header.len() + state.model.len() + state.optimizer.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&state.model);
    out.extend_from_slice(&state.optimizer);
    out
}

/// Parses a checkpoint; `name` (a path, usually) appears in every error.
pub fn decode_checkpoint(bytes: &[u8], name: &str) -> Result<TrainerState, StoreError> {
    let name_owned = || name.to_string();
    let truncated = |detail: &str| StoreError::Truncated {
        name: name_owned(),
        detail: detail.to_string(),
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        return Err(StoreError::BadMagic { name: name_owned() });
    }
    if bytes.len() < PREFIX_LEN {
        return Err(truncated("shorter than its fixed prefix"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(StoreError::UnsupportedVersion {
            name: name_owned(),
            found: version,
        });
    }
    let header_len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let header_end = usize::try_from(header_len).ok().and_then(|l| PREFIX_LEN.checked_add(l));
    let header_end = header_end
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| truncated("header runs past the end"))?;
    let header: Header = serde_json::from_slice(&bytes[PREFIX_LEN..header_end]).map_err(|e| StoreError::BadHeader {
        name: name_owned(),
        detail: e.to_string(),
    })?;
    let body = &bytes[header_end..];
    let expected = header.model_len.checked_add(header.optimizer_len);
    if expected != Some(body.len() as u64) {
        return Err(truncated(&format!(
            "header promises {} + {} bytes of weights and optimiser state, file has {}",
            header.model_len,
            header.optimizer_len,
            body.len()
        )));
    }
    header.config.validate().map_err(|detail| StoreError::BadHeader {
        name: name_owned(),
        detail,
    })?;
    let (model, optimizer) = body.split_at(header.model_len as usize);
    Ok(TrainerState {
        config: header.config,
        stats: header.stats,
        step: header.step,
        skipped_steps: header.skipped_steps,
        model: model.to_vec(),
        optimizer: optimizer.to_vec(),
    })
}

/// Builds the inference model a checkpoint describes, optionally insisting on a preset.
pub fn load_inference_model(
    state: &TrainerState,
    expected_preset: Option<Preset>,
    device: &Device,
    name: &str,
) -> Result<Conformer, StoreError> {
    if let Some(expected) = expected_preset
        && expected != state.config.preset
    {
        return Err(StoreError::WrongPreset {
            name: name.to_string(),
            found: state.config.preset.name(),
            expected: expected.name(),
        });
    }
    let model = state.config.model.init(device);
    crate::train::load_model(model, state.model.clone()).map_err(|detail| StoreError::BadWeights {
        name: name.to_string(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ConformerConfig;
    use crate::train::Trainer;

    fn small_state() -> TrainerState {
        let mut config = TrainConfig::for_preset(Preset::Tiny, 29);
        config.model = ConformerConfig {
            num_blocks: 1,
            d_model: 16,
            d_ff: 8,
            subsampling_channels: 2,
            ..config.model
        };
        Trainer::new(config, FeatureStats::identity(80), &Device::flex())
            .state()
            .unwrap()
    }

    #[test]
    fn round_trip_restores_identical_outputs() {
        let device = Device::flex();
        let state = small_state();
        let bytes = encode_checkpoint(&state);
        let decoded = decode_checkpoint(&bytes, "c.plc").unwrap();
        assert_eq!(decoded.config, state.config);
        assert_eq!(decoded.model, state.model);
        let feats = Tensor::<3>::random([1, 30, 80], burn::tensor::Distribution::Default, &device);
        let run = |s: &TrainerState| -> Vec<f32> {
            let model = load_inference_model(s, None, &device, "c.plc").unwrap();
            model.forward(feats.clone(), &[30]).logits.try_into_vec_as().unwrap()
        };
        assert_eq!(run(&state), run(&decoded));
    }

    #[test]
    fn garbage_truncation_and_wrong_preset_are_clear_errors() {
        let bytes = encode_checkpoint(&small_state());
        let garbage = decode_checkpoint(b"definitely not a checkpoint", "junk.bin").unwrap_err();
        assert_eq!(
            garbage.to_string(),
            "junk.bin: not a Prunelab checkpoint (bad magic bytes)"
        );
        let cut = decode_checkpoint(&bytes[..bytes.len() - 100], "cut.plc").unwrap_err();
        assert!(matches!(cut, StoreError::Truncated { .. }), "{cut}");
        let mut bad_header = bytes.clone();
        bad_header[PREFIX_LEN] = b'#';
        assert!(matches!(
            decode_checkpoint(&bad_header, "h.plc").unwrap_err(),
            StoreError::BadHeader { .. }
        ));

        let state = decode_checkpoint(&bytes, "tiny.plc").unwrap();
        let wrong = load_inference_model(&state, Some(Preset::Small), &Device::flex(), "tiny.plc").unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "tiny.plc: checkpoint holds a `tiny` model, but a `small` model was asked for"
        );
    }

    #[test]
    fn weights_that_do_not_fit_the_config_are_rejected() {
        let mut state = small_state();
        state.config.model.d_model = 24;
        let err = load_inference_model(&state, None, &Device::flex(), "mismatch.plc").unwrap_err();
        assert!(matches!(err, StoreError::BadWeights { .. }), "{err}");
        assert!(err.to_string().starts_with("mismatch.plc: "), "{err}");
    }
}
