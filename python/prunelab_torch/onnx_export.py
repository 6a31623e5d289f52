"""ONNX export of a rebuilt model with dynamic batch and time axes.

Uses `torch.onnx.export`'s TorchScript-based exporter (`dynamo=False` where the installed torch
has that switch): the dynamo exporter, the default from torch 2.9 on, needs the extra
`onnxscript` package, and this model needs nothing it adds. Every shape the graph depends on
(time positions, masks, the relative-position index) is computed from the input's shape, so
one file serves any batch size and length.
"""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path

import torch


def export_onnx(module: torch.nn.Module, path: str | Path, *, frames: int = 64, batch: int = 2,
                opset: int = 17) -> Path:
    """Writes `module` (a `PrunedConformer`) to `path` as ONNX.

    Inputs `feats` `[batch, frames, num_bins]` float32 and `lengths` `[batch]` int64; outputs
    `logits` `[batch, out_frames, vocab]` and `out_lengths` `[batch]` int64. `frames` and `batch`
    only size the example traced through the model; both axes stay dynamic.
    """
    path = Path(path)
    num_bins = module.config.num_bins
    example = (
        torch.zeros(batch, frames, num_bins, dtype=torch.float32),
        torch.full((batch,), frames, dtype=torch.int64),
    )
    kwargs = dict(
        input_names=["feats", "lengths"],
        output_names=["logits", "out_lengths"],
        dynamic_axes={
            "feats": {0: "batch", 1: "frames"},
            "lengths": {0: "batch"},
            "logits": {0: "batch", 1: "out_frames"},
            "out_lengths": {0: "batch"},
        },
        opset_version=opset,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    module.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter's deprecation notice and tracer warnings say nothing about this model.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(path), **kwargs)
    return path
