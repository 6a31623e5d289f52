//! The checkpoint format: a [`crate::container`] file (magic `PLCKPT01`, version 1) whose JSON
//! header holds the config, feature statistics, step and section lengths, and whose body is the
//! model's burnpack bytes, the optimiser's (possibly empty), then the gates' and the gate
//! optimiser's (empty for an ungated run), then the distillation maps' and their optimiser's
//! (empty without distillation). Headers written before a section existed omit its length,
//! which then reads as 0. The header also holds the body's CRC-32 (absent in checkpoints
//! written before it was added, which load unchecked), and, once the magnitude method has cut
//! the model, the plan it cut by (absent before, and in checkpoints written before session 40).
//! Everything is validated on load, the cut plan against the dense model and the cut shapes,
//! the config like command-line arguments and the model it describes against the size of
//! its weights; any mismatch is an error naming the file.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::audio::FeatureStats;
use crate::container::{ContainerError, Format};
use crate::gates::Gates;
use crate::model::{BlockKeep, Conformer, ConformerConfig, Preset};
use crate::prune::{check_cut_plan, param_count};
use crate::train::{TrainConfig, TrainerState, gate_layout};

const FORMAT: Format = Format {
    magic: b"PLCKPT01",
    version: 1,
    noun: "checkpoint",
};

#[derive(Serialize, Deserialize)]
struct Header {
    config: TrainConfig,
    stats: FeatureStats,
    step: usize,
    skipped_steps: usize,
    model_len: u64,
    optimizer_len: u64,
    #[serde(default)]
    gates_len: u64,
    #[serde(default)]
    gate_optimizer_len: u64,
    #[serde(default)]
    distill_maps_len: u64,
    #[serde(default)]
    distill_optimizer_len: u64,
    /// CRC-32 of the whole body.
    #[serde(default)]
    body_crc32: Option<u32>,
    /// The magnitude method's cut plan, once it has cut (see [`TrainerState::earlier_cut`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    earlier_cut: Option<Vec<BlockKeep>>,
}

/// Why a checkpoint could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error("{name}: {detail}")]
    BadWeights { name: String, detail: String },
    #[error("{0}")]
    Unserialisable(String),
    #[error("{name}: checkpoint is damaged: its contents do not match the checksum in its header")]
    Damaged { name: String },
    #[error("{name}: checkpoint holds a `{found}` model, but a `{expected}` model was asked for")]
    WrongPreset {
        name: String,
        found: &'static str,
        expected: &'static str,
    },
}

/// Serialises a trainer state.
pub fn encode_checkpoint(state: &TrainerState) -> Vec<u8> {
    let sections = [
        &state.model,
        &state.optimizer,
        &state.gates,
        &state.gate_optimizer,
        &state.distill_maps,
        &state.distill_optimizer,
    ];
    let mut crc = crc32fast::Hasher::new();
    sections.iter().for_each(|section| crc.update(section));
    let header = Header {
        config: state.config.clone(),
        stats: state.stats.clone(),
        step: state.step,
        skipped_steps: state.skipped_steps,
        model_len: state.model.len() as u64,
        optimizer_len: state.optimizer.len() as u64,
        gates_len: state.gates.len() as u64,
        gate_optimizer_len: state.gate_optimizer.len() as u64,
        distill_maps_len: state.distill_maps.len() as u64,
        distill_optimizer_len: state.distill_optimizer.len() as u64,
        body_crc32: Some(crc.finalize()),
        earlier_cut: state.earlier_cut.clone(),
    };
    FORMAT.encode(&header, &sections.map(Vec::as_slice))
}

/// Parses a checkpoint; `name` (a path, usually) appears in every error.
pub fn decode_checkpoint(bytes: &[u8], name: &str) -> Result<TrainerState, StoreError> {
    let (header, body): (Header, &[u8]) = FORMAT.decode(bytes, name)?;
    let sections = [
        header.model_len,
        header.optimizer_len,
        header.gates_len,
        header.gate_optimizer_len,
        header.distill_maps_len,
        header.distill_optimizer_len,
    ];
    let promised = sections.iter().try_fold(0u64, |acc, &len| acc.checked_add(len));
    if promised != Some(body.len() as u64) {
        let detail = format!(
            "header promises {} bytes of weights, optimiser, gates, gate optimiser and distillation state, file has {}",
            promised.map_or("too many".to_string(), |p| p.to_string()),
            body.len()
        );
        return Err(FORMAT.truncated(name, &detail).into());
    }
    if header.body_crc32.is_some_and(|crc| crc != crc32fast::hash(body)) {
        return Err(StoreError::Damaged { name: name.to_string() });
    }
    header
        .config
        .validate()
        .map_err(|detail| FORMAT.bad_header(name, detail.to_string()))?;
    check_model_fits_its_weights(&header.config.model, header.model_len)
        .map_err(|detail| FORMAT.bad_header(name, detail))?;
    header
        .stats
        .check(header.config.fbank.num_bins)
        .map_err(|detail| FORMAT.bad_header(name, detail))?;
    let (model, rest) = body.split_at(sections[0] as usize);
    let (optimizer, rest) = rest.split_at(sections[1] as usize);
    let (gates, rest) = rest.split_at(sections[2] as usize);
    let (gate_optimizer, rest) = rest.split_at(sections[3] as usize);
    let (distill_maps, distill_optimizer) = rest.split_at(sections[4] as usize);
    if let Some(plan) = &header.earlier_cut {
        check_cut_plan(&header.config.model, plan)
            .map_err(|detail| FORMAT.bad_header(name, format!("its cut plan: {detail}")))?;
    }
    if header.config.prune.method.is_gated() && gates.is_empty() {
        return Err(FORMAT
            .bad_header(name, "a gated run's checkpoint holds no gates".to_string())
            .into());
    }
    Ok(TrainerState {
        config: header.config,
        stats: header.stats,
        step: header.step,
        skipped_steps: header.skipped_steps,
        model: model.to_vec(),
        optimizer: optimizer.to_vec(),
        gates: gates.to_vec(),
        gate_optimizer: gate_optimizer.to_vec(),
        distill_maps: distill_maps.to_vec(),
        distill_optimizer: distill_optimizer.to_vec(),
        earlier_cut: header.earlier_cut,
    })
}

/// A model's weights take at least two bytes a parameter (f16; Prunelab writes f32), so a
/// config describing more parameters than its weights section could hold is refused before
/// the model is built: building it would allocate what the config claims.
pub(crate) fn check_model_fits_its_weights(model: &ConformerConfig, weight_bytes: u64) -> Result<(), String> {
    // The exact count is summed in usize; an upper bound in u64 first keeps it from
    // overflowing where usize is 32 bits (the lab): pruned widths never exceed dense ones.
    if dense_params_upper_bound(model) > usize::MAX as u64 {
        return Err("its config describes more parameters than this machine can address".into());
    }
    let params = param_count(model, &model.shapes()).total() as u64;
    if params.saturating_mul(2) > weight_bytes {
        return Err(format!(
            "its config describes a model of {params} parameters, but its weights are only {weight_bytes} bytes"
        ));
    }
    Ok(())
}

/// At least the dense model's parameter count, in u64 and saturating.
fn dense_params_upper_bound(model: &ConformerConfig) -> u64 {
    let [d, ff, k, ch, bins, vocab, heads, rel, blocks] = [
        model.d_model,
        model.d_ff,
        model.conv_kernel,
        model.subsampling_channels,
        model.num_bins,
        model.vocab_size,
        model.num_heads,
        model.max_rel_distance,
        model.num_blocks,
    ]
    .map(|n| n as u64);
    let sum = |terms: &[u64]| terms.iter().fold(0u64, |total, &t| total.saturating_add(t));
    let per_block = sum(&[
        (4 * d).saturating_mul(ff + 1),
        (6 * d).saturating_mul(d + k + 16),
        (2 * rel + 1).saturating_mul(heads),
        4 * ff,
    ]);
    let subsampling = sum(&[
        (10 * ch).saturating_mul(ch + 1),
        ch.saturating_mul(bins).saturating_mul(d + 1),
    ]);
    sum(&[
        blocks.saturating_mul(per_block),
        subsampling,
        (d + 1).saturating_mul(vocab),
    ])
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
    crate::train::load_model(model, state.model.clone()).map_err(|e| StoreError::BadWeights {
        name: name.to_string(),
        detail: e.to_string(),
    })
}

/// The inference gates of a gated run's checkpoint (`None` for an ungated run).
pub fn load_gates(state: &TrainerState, device: &Device, name: &str) -> Result<Option<Gates>, StoreError> {
    let c = &state.config;
    if c.prune.gate_kind().is_none() {
        return Ok(None);
    }
    let gates = Gates::new(&c.prune, gate_layout(&c.model), device);
    crate::train::load_gates(gates, state.gates.clone())
        .map(Some)
        .map_err(|e| StoreError::BadWeights {
            name: name.to_string(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(
            matches!(cut, StoreError::Container(ContainerError::Truncated { .. })),
            "{cut}"
        );
        let mut bad_header = bytes.clone();
        bad_header[20] = b'#'; // the first byte of the JSON header
        assert!(matches!(
            decode_checkpoint(&bad_header, "h.plc").unwrap_err(),
            StoreError::Container(ContainerError::BadHeader { .. })
        ));

        let state = decode_checkpoint(&bytes, "tiny.plc").unwrap();
        let wrong = load_inference_model(&state, Some(Preset::Small), &Device::flex(), "tiny.plc").unwrap_err();
        assert_eq!(
            wrong.to_string(),
            "tiny.plc: checkpoint holds a `tiny` model, but a `small` model was asked for"
        );
    }

    /// Rewrites a checkpoint's JSON header (the prefix is magic, version and header length).
    fn with_header(bytes: &[u8], edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
        let header_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
        let mut header: serde_json::Value = serde_json::from_slice(&bytes[20..20 + header_len]).unwrap();
        edit(&mut header);
        let header = serde_json::to_vec(&header).unwrap();
        let mut out = bytes[..12].to_vec();
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&bytes[20 + header_len..]);
        out
    }

    #[test]
    fn a_flipped_byte_is_reported_and_a_checkpoint_from_before_checksums_still_loads() {
        let state = small_state();
        let bytes = encode_checkpoint(&state);
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last - 4000] ^= 0x10;
        let err = decode_checkpoint(&flipped, "flipped.plc").unwrap_err();
        assert_eq!(
            err.to_string(),
            "flipped.plc: checkpoint is damaged: its contents do not match the checksum in its header"
        );
        let legacy = with_header(&bytes, |h| {
            h.as_object_mut().unwrap().remove("body_crc32").unwrap();
        });
        let decoded = decode_checkpoint(&legacy, "legacy.plc").unwrap();
        assert!(decoded.model == state.model, "the legacy checkpoint's weights differ");
    }

    /// A stored config is checked like command-line arguments before anything is built from
    /// it: zero heads used to divide by zero in the attention's constructor, and a config
    /// claiming a huge model would have allocated it.
    #[test]
    fn an_impossible_or_oversized_stored_config_is_refused_before_building_the_model() {
        let bytes = encode_checkpoint(&small_state());
        let zero_heads = with_header(&bytes, |h| h["config"]["model"]["num_heads"] = 0.into());
        let err = decode_checkpoint(&zero_heads, "zero.plc").unwrap_err().to_string();
        assert!(
            err.starts_with("zero.plc: checkpoint header is malformed: model num_heads 0 must be in [1, 64]"),
            "{err}"
        );
        let huge = with_header(&bytes, |h| {
            let model = &mut h["config"]["model"];
            model["d_model"] = 4096.into();
            model["d_ff"] = 65_536.into();
            model["num_blocks"] = 128.into();
        });
        let err = decode_checkpoint(&huge, "huge.plc").unwrap_err().to_string();
        assert!(
            err.contains("huge.plc") && err.contains("but its weights are only"),
            "{err}"
        );
        for (edit, message) in [
            (
                serde_json::json!({"mean": [], "std": []}),
                "feature statistics have 0 means and 0 deviations for 80 mel bins",
            ),
            (
                serde_json::json!({"mean": vec![0.0; 80], "std": vec![0.0; 80]}),
                "a deviation that is not above 0",
            ),
        ] {
            let bad_stats = with_header(&bytes, |h| h["stats"] = edit);
            let err = decode_checkpoint(&bad_stats, "stats.plc").unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        for (field, value, message) in [
            ("frame_shift_ms", 0.0, "fbank frames of 25 ms every 0 ms"),
            // 0.01 ms is no whole sample at 16 kHz: the frame count would divide by zero.
            ("frame_shift_ms", 0.01, "fbank frames of 25 ms every 0.01 ms"),
            ("low_freq", 8000.0, "fbank filters from 8000 Hz to 8000 Hz"),
            ("high_freq", 10.0, "fbank filters from 20 Hz to 10 Hz"),
        ] {
            let bad_fbank = with_header(&bytes, |h| h["config"]["fbank"][field] = value.into());
            let err = decode_checkpoint(&bad_fbank, "fbank.plc")
                .map(drop)
                .unwrap_err()
                .to_string();
            assert!(err.contains(message), "{field} {value}: {err}");
        }
    }

    #[test]
    fn the_upper_bound_is_at_least_the_exact_count() {
        for preset in Preset::ALL {
            let model = preset.config(80, 29);
            let exact = param_count(&model, &model.shapes()).total() as u64;
            let bound = dense_params_upper_bound(&model);
            assert!(
                exact <= bound && bound < 2 * exact,
                "{}: {exact} vs {bound}",
                preset.name()
            );
        }
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
