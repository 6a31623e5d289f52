"""Reading an export directory written by `prunelab prune`: `manifest.json` + `model.safetensors`.

The manifest (engine/src/store/export.rs, `ExportManifest`) carries the full training config
(whose `model.block_shapes` holds the pruned widths), the feature statistics used for
normalisation, and the keep-plan. The weights are burn's safetensors layout: tensor names are
the module paths (`blocks.3.attention.query.weight`), linear weights are stored `[in, out]`
(burn's layout, the transpose of PyTorch's), convolution kernels as PyTorch stores them.

Retention scales and whole-module gate values are already folded into the exported weights by
the surgery (`Conformer::pruned`), so the keep-plan's `scale` lists are informational here:
the model is rebuilt from the weights and the block shapes alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

EXPORT_FORMAT = "prunelab-pruned-model"
EXPORT_VERSION = 1


class ExportError(ValueError):
    """The directory is not an export this package understands (named, with the reason)."""


@dataclass
class BlockShape:
    """Widths of one block after pruning; 0 (or no heads) means the module is gone."""

    ffn1_hidden: int
    query_widths: list[int]
    value_widths: list[int]
    conv_channels: int
    ffn2_hidden: int

    def present(self) -> list[bool]:
        """Whether each module remains, in the engine's `MODULES` order (ffn1, attention, conv, ffn2)."""
        return [self.ffn1_hidden > 0, len(self.value_widths) > 0, self.conv_channels > 0, self.ffn2_hidden > 0]


@dataclass
class ModelConfig:
    """The subset of the engine's `ConformerConfig` that shapes the forward pass."""

    num_bins: int
    vocab_size: int
    d_model: int
    num_blocks: int
    num_heads: int
    d_ff: int
    conv_kernel: int
    subsampling_channels: int
    max_rel_distance: int
    block_shapes: list[BlockShape] = field(default_factory=list)

    @property
    def head_dim(self) -> int:
        """Width of an unpruned head, `d / h`: it sets the attention logit scale even after pruning."""
        return self.d_model // self.num_heads


@dataclass
class Export:
    """Everything needed to rebuild the model: config, feature statistics, weights, raw manifest."""

    config: ModelConfig
    mean: np.ndarray  # [num_bins] float32
    std: np.ndarray  # [num_bins] float32
    weights: dict[str, np.ndarray]
    manifest: dict


def _model_config(manifest: dict, name: str) -> ModelConfig:
    try:
        model = manifest["config"]["model"]
        shapes = model.get("block_shapes")
        if shapes is None:
            raise ExportError(f"{name}: manifest config has no block shapes")
        config = ModelConfig(
            num_bins=int(model["num_bins"]),
            vocab_size=int(model["vocab_size"]),
            d_model=int(model["d_model"]),
            num_blocks=int(model["num_blocks"]),
            num_heads=int(model["num_heads"]),
            d_ff=int(model["d_ff"]),
            conv_kernel=int(model["conv_kernel"]),
            subsampling_channels=int(model["subsampling_channels"]),
            max_rel_distance=int(model.get("max_rel_distance", 64)),
            block_shapes=[
                BlockShape(
                    ffn1_hidden=int(s["ffn1_hidden"]),
                    query_widths=[int(w) for w in s["query_widths"]],
                    value_widths=[int(w) for w in s["value_widths"]],
                    conv_channels=int(s["conv_channels"]),
                    ffn2_hidden=int(s["ffn2_hidden"]),
                )
                for s in shapes
            ],
        )
    except (KeyError, TypeError) as e:
        raise ExportError(f"{name}: manifest config is missing {e}") from e
    if len(config.block_shapes) != config.num_blocks:
        raise ExportError(f"{name}: {len(config.block_shapes)} block shapes for {config.num_blocks} blocks")
    if config.d_model % config.num_heads != 0:
        raise ExportError(f"{name}: d_model {config.d_model} does not split into {config.num_heads} heads")
    for i, s in enumerate(config.block_shapes):
        if len(s.query_widths) != len(s.value_widths) or any(w <= 0 for w in s.value_widths):
            raise ExportError(f"{name}: block {i} has mismatched heads or a head without value dimensions")
    return config


def read_export(export_dir: str | Path) -> Export:
    """Reads and checks `export_dir/manifest.json` and `export_dir/model.safetensors`."""
    export_dir = Path(export_dir)
    manifest_path = export_dir / "manifest.json"
    weights_path = export_dir / "model.safetensors"
    name = str(manifest_path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ExportError(f"{name}: cannot read the manifest: {e}") from e
    if manifest.get("format") != EXPORT_FORMAT:
        raise ExportError(f"{name}: `format` is {manifest.get('format')!r}, expected {EXPORT_FORMAT!r}")
    if manifest.get("version") != EXPORT_VERSION:
        raise ExportError(f"{name}: export version {manifest.get('version')} is not supported "
                          f"(this package reads version {EXPORT_VERSION})")
    config = _model_config(manifest, name)
    try:
        mean = np.asarray(manifest["stats"]["mean"], dtype=np.float32)
        std = np.asarray(manifest["stats"]["std"], dtype=np.float32)
    except (KeyError, TypeError) as e:
        raise ExportError(f"{name}: manifest has no feature statistics ({e})") from e
    if mean.shape != (config.num_bins,) or std.shape != (config.num_bins,):
        raise ExportError(f"{name}: feature statistics do not have {config.num_bins} bins")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
        raise ExportError(f"{name}: feature statistics hold a non-finite mean or a deviation not above 0")
    try:
        weights = load_file(str(weights_path))
    except Exception as e:  # safetensors raises its own error types
        raise ExportError(f"{weights_path}: cannot read the weights: {e}") from e
    return Export(config=config, mean=mean, std=std, weights=weights, manifest=manifest)
