"""The whole pruned model (engine/src/model/conformer.rs) plus the feature normalisation that
prunelab applies before it (engine/src/audio/normalize.rs, engine/src/infer/batch.rs).

Input is what `prunelab fbank` writes: log-mel features before normalisation, zero-padded to a
batch. Prunelab normalises each utterance's valid frames with the training statistics and pads
the batch with zeros afterwards, so padded frames are zero *after* normalisation; this module
does the same, then runs subsampling -> blocks -> linear CTC head.
"""

from __future__ import annotations

import torch
from torch import nn

from .block import ConformerBlock
from .export_dir import Export
from .subsampling import ConvSubsampling, output_lengths
from .weights import WeightReader


def padding_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """`[b, frames]`, True at or past each sequence's length."""
    positions = torch.arange(frames, device=lengths.device)
    return positions.unsqueeze(0) >= lengths.unsqueeze(1)


class PrunedConformer(nn.Module):
    """A pruned Conformer-CTC rebuilt from a `prunelab prune` export (inference only).

    `forward(feats, lengths)`:
    - `feats`: `[b, t, num_bins]` float32 log-mel features before normalisation, zero-padded
    - `lengths`: `[b]` int64 valid input frames
    - returns `(logits [b, s, vocab], out_lengths [b] int64)` with `s` the subsampled length of
      `t`; frames at or past `out_lengths` are padding and mean nothing.
    """

    def __init__(self, export: Export, source: str = "model.safetensors"):
        super().__init__()
        config = export.config
        self.config = config
        self.manifest = export.manifest
        reader = WeightReader(export.weights, source)
        self.register_buffer("mean", torch.from_numpy(export.mean.copy()))
        self.register_buffer("std", torch.from_numpy(export.std.copy()))
        self.subsampling = ConvSubsampling(reader, config.num_bins, config.subsampling_channels, config.d_model)
        self.blocks = nn.ModuleList(
            ConformerBlock(reader, i, config, shape) for i, shape in enumerate(config.block_shapes)
        )
        self.head = reader.linear("head", config.d_model, config.vocab_size)
        reader.finish()
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = lengths.to(torch.int64)
        x = (feats - self.mean) / self.std
        x = x.masked_fill(padding_mask(lengths, feats.shape[1]).unsqueeze(-1), 0.0)
        x = self.subsampling(x)  # [b, s, d]
        padding = padding_mask(output_lengths(lengths), x.shape[1])  # [b, s]
        # min(length, s) as the engine clamps it, counted from the mask so that an ONNX export
        # keeps s dynamic rather than baking the traced time length in as a constant.
        out_lengths = (~padding).sum(dim=1)
        for block in self.blocks:
            x = block(x, padding)
        return self.head(x), out_lengths
