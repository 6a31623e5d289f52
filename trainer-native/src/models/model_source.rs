//! A model to evaluate: a training checkpoint (a gated one scored under its inference gates)
//! or a pruned export (a directory, or its manifest.json, with model.safetensors beside it; or
//! the lab's download, both in one `.tar`).

use std::path::{Path, PathBuf};

use prunelab_engine::audio::FeatureStats;
use prunelab_engine::bounded_read::{limits, read_bounded, read_text_bounded};
use prunelab_engine::burn::prelude::*;
use prunelab_engine::model::{BlockMasks, Conformer, Preset};
use prunelab_engine::readback::block_on;
use prunelab_engine::store::{load_export, load_gates, load_inference_model, read_export_archive};

use super::read_checkpoint;
use prunelab_engine::train::{TrainConfig, block_masks};

pub struct LoadedModel {
    pub name: String,
    pub config: TrainConfig,
    pub stats: FeatureStats,
    /// Training steps behind it (checkpoints only).
    pub step: Option<usize>,
    pub model: Conformer,
    /// Inference gates of a gated checkpoint (empty otherwise).
    pub masks: Vec<BlockMasks>,
    /// "checkpoint", "gated checkpoint at threshold T" or "pruned export".
    pub kind: String,
}

/// Opens `path`; `threshold` overrides a gated checkpoint's own.
pub fn open_model(
    path: &Path,
    preset: Option<Preset>,
    threshold: Option<f64>,
    device: &Device,
) -> Result<LoadedModel, String> {
    if let Some(threshold) = threshold
        && !(0.0..=1.0).contains(&threshold)
    {
        return Err(format!("--threshold {threshold} is outside [0, 1]"));
    }
    // A threshold that cannot apply is refused rather than ignored: the reader would take the
    // score for a cut at that threshold.
    let inapplicable = |what: &str| {
        format!(
            "{}: --threshold applies to gated checkpoints; this is {what}",
            path.display()
        )
    };
    if let Some(export) = ExportPath::of(path) {
        if threshold.is_some() {
            return Err(inapplicable("an export, already cut"));
        }
        let files = export.read()?;
        return open_export(files.name, &files.manifest, &files.weights, preset, device);
    }
    let name = path.display().to_string();
    let state = read_checkpoint(path)?;
    let model = load_inference_model(&state, preset, device, &name).map_err(|e| e.to_string())?;
    let gates = load_gates(&state, device, &name).map_err(|e| e.to_string())?;
    if gates.is_none() && threshold.is_some() {
        return Err(inapplicable(&format!(
            "a checkpoint of method {}, which has no gates",
            state.config.prune.method.name()
        )));
    }
    let threshold = threshold.unwrap_or(state.config.prune.threshold);
    let kind = match &gates {
        Some(_) => format!("gated checkpoint at threshold {threshold}"),
        None => "checkpoint".into(),
    };
    let masks = match gates {
        Some(g) => {
            block_masks(block_on(g.deterministic(&state.config.prune, threshold)).map_err(|e| format!("{name}: {e}"))?)
        }
        None => Vec::new(),
    };
    Ok(LoadedModel {
        masks,
        name,
        step: Some(state.step),
        config: state.config,
        stats: state.stats,
        model,
        kind,
    })
}

/// Where an export lies: a manifest.json with model.safetensors beside it, or the lab's `.tar`
/// of both.
enum ExportPath {
    Manifest(PathBuf),
    Archive(PathBuf),
}

/// An export as read from disk: the name its messages use, its manifest and its weights.
struct ExportFiles {
    name: String,
    manifest: String,
    weights: Vec<u8>,
}

impl ExportPath {
    /// The export `path` names, if it names one: its directory or its manifest.json, or a `.tar`.
    fn of(path: &Path) -> Option<Self> {
        let is = |extension: &str| path.extension().is_some_and(|e| e == extension);
        if path.is_dir() {
            Some(Self::Manifest(path.join("manifest.json")))
        } else if is("json") {
            Some(Self::Manifest(path.to_path_buf()))
        } else if is("tar") {
            Some(Self::Archive(path.to_path_buf()))
        } else {
            None
        }
    }

    fn read(&self) -> Result<ExportFiles, String> {
        match self {
            Self::Manifest(manifest_path) => {
                let manifest = read_text_bounded(manifest_path, limits::JSON, "manifest").map_err(|e| e.to_string())?;
                let weights_path = manifest_path.with_file_name("model.safetensors");
                let weights = read_bounded(&weights_path, limits::EXPORT_WEIGHTS, "export's weights")
                    .map_err(|e| e.to_string())?;
                Ok(ExportFiles {
                    name: manifest_path.display().to_string(),
                    manifest,
                    weights,
                })
            }
            Self::Archive(path) => {
                let name = path.display().to_string();
                let archive = read_bounded(path, ARCHIVE_LIMIT, "export archive").map_err(|e| e.to_string())?;
                let (manifest, weights) = read_export_archive(&archive, &name).map_err(|e| e.to_string())?;
                Ok(ExportFiles {
                    name,
                    manifest,
                    weights,
                })
            }
        }
    }
}

/// The largest export archive: both files at their limits, and the tar headers around them.
const ARCHIVE_LIMIT: u64 = limits::EXPORT_WEIGHTS + limits::JSON + 16 * 1024;

/// An export's manifest and weights (`name` for messages), loaded, and checked against `preset`.
fn open_export(
    name: String,
    manifest: &str,
    weights: &[u8],
    preset: Option<Preset>,
    device: &Device,
) -> Result<LoadedModel, String> {
    let (manifest, model) = load_export(manifest, weights, device, &name).map_err(|e| e.to_string())?;
    if let Some(expected) = preset
        && expected != manifest.config.preset
    {
        return Err(format!(
            "{name}: export holds a `{}` model, but a `{}` model was asked for",
            manifest.config.preset.name(),
            expected.name()
        ));
    }
    Ok(LoadedModel {
        name,
        config: manifest.config,
        stats: manifest.stats,
        step: None,
        model,
        masks: Vec::new(),
        kind: format!("pruned export ({} parameters)", manifest.params.total()),
    })
}
