"""Rebuild a pruned Conformer-CTC exported by `prunelab prune` in PyTorch, and export it to ONNX.

    import prunelab_torch
    model = prunelab_torch.load("exports/l0-cut")          # manifest.json + model.safetensors
    logits, out_lengths = model(feats, lengths)             # feats as `prunelab fbank` writes them
    prunelab_torch.export_onnx(model, "model.onnx")         # dynamic batch and time axes

The module mirrors the Rust engine (engine/src/model) exactly, including pruned heads of
unequal widths, removed modules, the relative-position bias, BatchNorm's running statistics and
the feature normalisation from the manifest.
"""

from __future__ import annotations

from pathlib import Path

from .conformer import PrunedConformer
from .export_dir import Export, ExportError, read_export
from .onnx_export import export_onnx
from .subsampling import output_lengths

__all__ = ["load", "export_onnx", "PrunedConformer", "ExportError", "read_export", "output_lengths"]


def load(export_dir: str | Path) -> PrunedConformer:
    """The model in `export_dir` (written by `prunelab prune`), in eval mode, on the CPU."""
    export = read_export(export_dir)
    return PrunedConformer(export, source=str(Path(export_dir) / "model.safetensors"))
