//! The pruned-model export: the physically smaller model's weights as safetensors, plus a JSON
//! manifest that says how it was made, which units of the dense model it kept (indices and
//! folded scales per site) and the sizes that result. The manifest holds the full training
//! config (with the new block shapes) and feature statistics, so it loads with nothing else.

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::{Deserialize, Serialize};

use super::StoreError;
use crate::audio::FeatureStats;
use crate::gates::Method;
use crate::model::{BlockKeep, Conformer, KeptUnits};
use crate::prune::{
    CutSource, ParamCount, Pruned, Selection, check_cut_plan, flops_per_second, param_count, planned_params,
    planned_shapes,
};
use crate::train::TrainConfig;

/// What `format` says in every manifest, and the version this build writes and reads.
pub const EXPORT_FORMAT: &str = "prunelab-pruned-model";
pub const EXPORT_VERSION: u32 = 1;

/// The JSON manifest beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportManifest {
    pub format: String,
    pub version: u32,
    /// The checkpoint it was pruned from.
    pub source: String,
    /// What scored the units: the run's method (magnitude for a dense run).
    pub method: Method,
    pub selection: Selection,
    /// The run's config; `model.block_shapes` holds the pruned widths.
    pub config: TrainConfig,
    pub stats: FeatureStats,
    /// Per block: kept unit indices (into the dense model) and folded scales, per site.
    pub keep: Vec<BlockKeep>,
    pub params: ParamCount,
    pub dense_params: ParamCount,
    pub flops_per_second: f64,
    pub dense_flops_per_second: f64,
}

impl ExportManifest {
    /// The manifest of `pruned`, cut from `source` by `selection`, for a run of `run` with
    /// feature statistics `stats`; `name` says where it came from (a checkpoint's path, the
    /// lab's run). `prunelab prune` and the lab's "Download model" both describe a cut here.
    pub fn of_cut(
        name: impl Into<String>,
        source: &CutSource,
        selection: Selection,
        pruned: &Pruned,
        run: &TrainConfig,
        stats: &FeatureStats,
    ) -> Self {
        let dense_shapes = source.dense_shapes();
        let mut config = run.clone();
        config.model.block_shapes = Some(pruned.model.block_shapes());
        Self {
            format: EXPORT_FORMAT.into(),
            version: EXPORT_VERSION,
            source: name.into(),
            method: source.method,
            selection,
            config,
            stats: stats.clone(),
            keep: pruned.keep.clone(),
            params: pruned.params,
            dense_params: param_count(&source.config, &dense_shapes),
            flops_per_second: pruned.flops_per_second,
            dense_flops_per_second: flops_per_second(&source.config, &dense_shapes),
        }
    }

    /// The manifest as the indented JSON file `manifest.json`.
    pub fn to_json(&self) -> Result<String, StoreError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| StoreError::Unserialisable(format!("cannot write the manifest: {e}")))
    }
}

/// Safetensors bytes of a (pruned) model; the same model gives the same bytes.
pub fn encode_weights(model: &Conformer) -> Result<Vec<u8>, StoreError> {
    let bad = |e: &dyn std::fmt::Display| StoreError::Unserialisable(format!("cannot serialise weights: {e}"));
    let mut store = SafetensorsStore::from_bytes(None);
    model.save_into(&mut store).map_err(|e| bad(&e))?;
    let bytes = store.get_bytes().map_err(|e| bad(&e))?;
    with_sorted_header(&bytes).map_err(|e| bad(&e))
}

/// `safetensors` with every key of its JSON header in sorted order. burn writes the header's
/// `__metadata__` from a hash map, in a different order each time, so the same weights would
/// otherwise give different files (and different checksums).
fn with_sorted_header(file: &[u8]) -> Result<Vec<u8>, String> {
    let (header, header_len) = safetensors_header(file)?;
    let mut header = serde_json::to_vec(&sorted(header)).map_err(|e| e.to_string())?;
    // The format pads its header with spaces so that the tensor data starts 8-byte aligned.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + file.len() - 8 - header_len);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&file[8 + header_len..]);
    Ok(out)
}

/// A safetensors file's JSON header and its length in bytes.
fn safetensors_header(file: &[u8]) -> Result<(serde_json::Value, usize), String> {
    let header_len = file
        .get(..8)
        .and_then(|b| usize::try_from(u64::from_le_bytes(b.try_into().ok()?)).ok())
        .filter(|&n| n <= file.len() - 8)
        .ok_or("the safetensors header's length is out of range")?;
    let header =
        serde_json::from_slice(&file[8..8 + header_len]).map_err(|e| format!("bad safetensors header: {e}"))?;
    Ok((header, header_len))
}

/// The first tensor of a safetensors `file` that cannot be an export's weight, with why: a
/// dtype other than F32 (an export holds f32 weights only, and a loader that converted another
/// would hide a foreign file), data whose length disagrees with its shape, or NaN or infinite
/// values. A file whose header this cannot read is left to the loader, which refuses it with
/// its own message.
fn tensor_problem(file: &[u8]) -> Option<String> {
    let (header, header_len) = safetensors_header(file).ok()?;
    let data = &file[8 + header_len..];
    for (name, entry) in header.as_object()? {
        if name == "__metadata__" {
            continue;
        }
        let dtype = entry["dtype"].as_str().unwrap_or("missing");
        if dtype != "F32" {
            return Some(format!("{name} is {dtype}, not F32"));
        }
        let shape: Option<Vec<u64>> = entry["shape"]
            .as_array()
            .and_then(|dims| dims.iter().map(serde_json::Value::as_u64).collect());
        let offsets: Option<Vec<u64>> = entry["data_offsets"]
            .as_array()
            .and_then(|o| o.iter().map(serde_json::Value::as_u64).collect());
        let (Some(shape), Some([start, end])) = (shape, offsets.as_deref()) else {
            return Some(format!("{name} has no readable shape or data offsets"));
        };
        let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d));
        let bytes = data.get(*start as usize..*end as usize);
        let (Some(elements), Some(bytes)) = (elements, bytes) else {
            return Some(format!("{name}'s data lies outside the file"));
        };
        if elements.checked_mul(4) != Some(bytes.len() as u64) {
            return Some(format!(
                "{name} has shape {shape:?} ({elements} values) but {} bytes of data",
                bytes.len()
            ));
        }
        if bytes
            .chunks_exact(4)
            .any(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
        {
            return Some(format!("{name} holds NaN or infinite values"));
        }
    }
    None
}

/// `value` with the keys of every object in it in sorted order (whatever order serde_json's
/// maps keep).
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Builds the pruned model a manifest describes and loads `weights` into it, refusing any
/// disagreement between the two. `name` (the manifest's path) appears in every error.
pub fn load_export(
    manifest: &str,
    weights: &[u8],
    device: &Device,
    name: &str,
) -> Result<(ExportManifest, Conformer), StoreError> {
    let bad = |detail: String| StoreError::BadWeights {
        name: name.to_string(),
        detail,
    };
    let manifest: ExportManifest =
        serde_json::from_str(manifest).map_err(|e| bad(format!("manifest is not valid JSON for an export: {e}")))?;
    if manifest.format != EXPORT_FORMAT {
        return Err(bad(format!(
            "`format` is {:?}, expected {EXPORT_FORMAT:?}",
            manifest.format
        )));
    }
    if manifest.version != EXPORT_VERSION {
        return Err(bad(format!(
            "export version {} is not supported (this build reads version {EXPORT_VERSION})",
            manifest.version
        )));
    }
    manifest
        .config
        .validate()
        .map_err(|e| bad(format!("manifest config: {e}")))?;
    let model_config = &manifest.config.model;
    manifest
        .stats
        .check(manifest.config.fbank.num_bins)
        .map_err(|e| bad(format!("manifest: {e}")))?;
    check_cut_plan(model_config, &manifest.keep).map_err(|e| bad(format!("manifest: {e}")))?;
    let expected = planned_params(&model_config.clone().with_block_shapes(None), &manifest.keep);
    if expected != manifest.params {
        return Err(bad(format!(
            "manifest says {} parameters, its shapes make {}",
            manifest.params.total(),
            expected.total()
        )));
    }
    super::checkpoint::check_model_fits_its_weights(model_config, weights.len() as u64)
        .map_err(|detail| bad(format!("weights do not fit the manifest: {detail}")))?;
    if let Some(problem) = tensor_problem(weights) {
        return Err(bad(format!("weights: {problem}")));
    }
    let mut model = model_config.init(device);
    let mut store = SafetensorsStore::from_bytes(Some(weights.to_vec())).validate(true);
    let applied = model
        .load_from(&mut store)
        .map_err(|e| bad(format!("weights do not fit the manifest: {e}")))?;
    if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
        let first = applied
            .errors
            .first()
            .map(|e| format!("{e:?}"))
            .or_else(|| {
                applied
                    .missing
                    .first()
                    .map(|(path, _)| format!("missing tensor {path}"))
            })
            .or_else(|| applied.unused.first().map(|path| format!("unexpected tensor {path}")))
            .unwrap_or_default();
        return Err(bad(format!(
            "weights do not match the manifest ({} errors, {} missing, {} unexpected; first: {first})",
            applied.errors.len(),
            applied.missing.len(),
            applied.unused.len()
        )));
    }
    Ok((manifest, model))
}

/// A one-block model (d 16, FFN 8) pruned to half its FFN units and exported: manifest JSON,
/// safetensors weights and the pruned model. For tests, and the fuzzer's seeds.
#[doc(hidden)]
pub fn sample_export(device: &Device) -> (String, Vec<u8>, Conformer) {
    let mut config = TrainConfig::for_preset(crate::model::Preset::Tiny, 29);
    config.model.num_blocks = 1;
    config.model.d_model = 16;
    config.model.d_ff = 8;
    config.model.subsampling_channels = 2;
    let dense = config.model.init(device);
    let half = KeptUnits {
        index: vec![0, 2, 4, 6],
        scale: vec![0.9; 4],
    };
    let keep = vec![BlockKeep {
        ffn1: half.clone(),
        query: vec![KeptUnits::all(4); 4],
        value: vec![KeptUnits::all(4); 4],
        conv: KeptUnits::all(16),
        ffn2: half,
        modules: [1.0; 4],
    }];
    let pruned = dense.pruned(&keep);
    let mut export_config = config.clone();
    export_config.model.block_shapes = Some(pruned.block_shapes());
    let manifest = ExportManifest {
        format: EXPORT_FORMAT.into(),
        version: EXPORT_VERSION,
        source: "c.plc".into(),
        method: Method::AdaptiveDropout,
        selection: Selection::Threshold(0.5),
        params: planned_params(&config.model, &keep),
        dense_params: planned_params(&config.model, &[]),
        flops_per_second: crate::prune::flops_per_second(&config.model, &planned_shapes(&keep)),
        dense_flops_per_second: 0.0,
        config: export_config,
        stats: FeatureStats::identity(80),
        keep,
    };
    let json = serde_json::to_string(&manifest).expect("a manifest serialises");
    let weights = encode_weights(&pruned).expect("weights serialise");
    (json, weights, pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> (String, Vec<u8>, Conformer) {
        sample_export(&Device::flex())
    }

    #[test]
    fn the_same_model_gives_the_same_bytes() {
        let (_, _, pruned) = export();
        let first = encode_weights(&pruned).unwrap();
        for _ in 0..4 {
            assert!(encode_weights(&pruned).unwrap() == first);
        }
        let header_len = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(header_len % 8, 0, "tensor data starts 8-byte aligned");
        let header = std::str::from_utf8(&first[8..8 + header_len]).unwrap();
        assert!(
            header.starts_with(r#"{"__metadata__":{"format":"safetensors","producer":"burn""#),
            "{header}"
        );
    }

    #[test]
    fn round_trip_gives_the_same_outputs() {
        let device = Device::flex();
        let (manifest, weights, pruned) = export();
        let (_, loaded) = load_export(&manifest, &weights, &device, "m.json").unwrap();
        let feats = Tensor::<3>::random([1, 40, 80], burn::tensor::Distribution::Default, &device);
        let a: Vec<f32> = pruned.forward(feats.clone(), &[40]).logits.try_into_vec_as().unwrap();
        let b: Vec<f32> = loaded.forward(feats, &[40]).logits.try_into_vec_as().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn weights_holding_nan_or_infinity_are_refused_by_tensor_name() {
        let (manifest, weights, _) = export();
        let (header, header_len) = safetensors_header(&weights).unwrap();
        let start = header["head.weight"]["data_offsets"][0].as_u64().unwrap() as usize + 8 + header_len;
        for bad in [f32::NAN, f32::NEG_INFINITY] {
            let mut edited = weights.clone();
            edited[start + 4..start + 8].copy_from_slice(&bad.to_le_bytes());
            let err = load_export(&manifest, &edited, &Device::flex(), "nan.json")
                .unwrap_err()
                .to_string();
            assert_eq!(err, "nan.json: weights: head.weight holds NaN or infinite values");
        }
    }

    #[test]
    fn a_tensor_of_another_dtype_is_refused_by_name() {
        let (manifest, weights, _) = export();
        let (_, header_len) = safetensors_header(&weights).unwrap();
        let header = std::str::from_utf8(&weights[8..8 + header_len]).unwrap();
        // The same header with head.weight's dtype changed in place (I32: four bytes a value,
        // so the sizes still agree and only the dtype is wrong).
        let entry = header.find(r#""head.weight":{"#).unwrap();
        let dtype = entry + header[entry..].find(r#""F32""#).unwrap();
        let mut edited = weights.clone();
        edited[8 + dtype + 1] = b'I';
        let err = load_export(&manifest, &edited, &Device::flex(), "i32.json")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "i32.json: weights: head.weight is I32, not F32");
    }

    #[test]
    fn a_manifest_that_does_not_match_its_weights_is_a_clear_error() {
        let device = Device::flex();
        let (manifest, weights, _) = export();
        // Claim six FFN units where the weights hold four.
        let mut edited: ExportManifest = serde_json::from_str(&manifest).unwrap();
        edited.keep[0].ffn1.index = vec![0, 1, 2, 3, 4, 6];
        edited.keep[0].ffn1.scale = vec![1.0; 6];
        let shapes = planned_shapes(&edited.keep);
        edited.config.model.block_shapes = Some(shapes);
        edited.params = planned_params(&edited.config.model.clone().with_block_shapes(None), &edited.keep);
        let json = serde_json::to_string(&edited).unwrap();
        let err = load_export(&json, &weights, &device, "edited.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("edited.json: weights do not"), "{err}");
        let mut unordered = edited;
        unordered.keep[0].ffn1.index = vec![0, 2, 4, 6, 1, 3];
        let json = serde_json::to_string(&unordered).unwrap();
        let err = load_export(&json, &weights, &device, "unordered.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("kept ffn1 units must be ascending indices below 8"),
            "{err}"
        );

        let err = load_export(&manifest, b"not safetensors", &device, "m.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.json: weights do not fit the manifest"), "{err}");
        let err = load_export(&manifest, &vec![7u8; weights.len()], &device, "m.json")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("m.json: weights do not fit the manifest"), "{err}");
        let err = load_export("{}", &weights, &device, "empty.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("empty.json: manifest is not valid JSON for an export"),
            "{err}"
        );
        let mut other: ExportManifest = serde_json::from_str(&manifest).unwrap();
        other.version = 9;
        let err = load_export(&serde_json::to_string(&other).unwrap(), &weights, &device, "v9.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("export version 9 is not supported"), "{err}");
    }
}
