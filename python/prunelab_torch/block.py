"""One Conformer block (engine/src/model/block.rs): x + 1/2 FFN1 -> + MHSA -> + Conv -> + 1/2 FFN2 -> LayerNorm.

Any of the four modules may be gone after pruning. A module removed by its whole-module gate
added nothing; one whose every unit was pruned still added a constant (its output bias), which
the export keeps as row `slot` of `removed_outputs` `[4, d]` (present only when some module is
gone). Both cases are "add `removed_outputs[slot]`" here (the row is zero for the first case).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import RelPosSelfAttention
from .convolution import ConvModule
from .export_dir import BlockShape, ModelConfig
from .feed_forward import FeedForward
from .weights import WeightReader

#: The four modules of a block in forward order: slots of `removed_outputs`.
MODULES = ("ffn1", "attention", "conv", "ffn2")


class ConformerBlock(nn.Module):
    """`[b, s, d]`, padding `[b, s]` -> `[b, s, d]`."""

    def __init__(self, reader: WeightReader, index: int, config: ModelConfig, shape: BlockShape):
        super().__init__()
        prefix = f"blocks.{index}"
        d = config.d_model
        self.ffn1 = FeedForward(reader, f"{prefix}.ffn1", d, shape.ffn1_hidden) if shape.ffn1_hidden else None
        self.attention = (
            RelPosSelfAttention(reader, f"{prefix}.attention", d, config.head_dim, config.max_rel_distance,
                                shape.query_widths, shape.value_widths)
            if shape.value_widths else None
        )
        self.conv = (
            ConvModule(reader, f"{prefix}.conv", d, shape.conv_channels, config.conv_kernel)
            if shape.conv_channels else None
        )
        self.ffn2 = FeedForward(reader, f"{prefix}.ffn2", d, shape.ffn2_hidden) if shape.ffn2_hidden else None
        self.norm = reader.layer_norm(f"{prefix}.norm", d)
        if not all(shape.present()):
            constants = reader.take(f"{prefix}.removed_outputs", (4, d))
            self.register_buffer("removed_outputs", constants)
        else:
            self.removed_outputs = None

    def _constant(self, slot: int, x: torch.Tensor) -> torch.Tensor:
        """x plus what removed module `slot` still adds."""
        if self.removed_outputs is None:
            return x
        return x + self.removed_outputs[slot]

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.ffn1(x) if self.ffn1 is not None else self._constant(0, x)
        x = x + self.attention(x, padding) if self.attention is not None else self._constant(1, x)
        x = x + self.conv(x, padding) if self.conv is not None else self._constant(2, x)
        x = x + 0.5 * self.ffn2(x) if self.ffn2 is not None else self._constant(3, x)
        return self.norm(x)
