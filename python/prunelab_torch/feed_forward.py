"""The macaron feed-forward module (engine/src/model/feed_forward.rs).

LayerNorm -> Linear(d -> u) -> Swish -> Linear(u -> d); the block adds it at half weight.
Pruned hidden units are simply absent; their retention scales and the module's gate value were
folded into the contraction by the surgery.
"""

from __future__ import annotations

import torch
from torch import nn

from .weights import WeightReader


class FeedForward(nn.Module):
    """`[b, s, d]` -> `[b, s, d]` (before the block's 0.5 and residual)."""

    def __init__(self, reader: WeightReader, prefix: str, d_model: int, hidden: int):
        super().__init__()
        self.norm = reader.layer_norm(f"{prefix}.norm", d_model)
        self.expand = reader.linear(f"{prefix}.expand", d_model, hidden)
        self.contract = reader.linear(f"{prefix}.contract", hidden, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.contract(torch.nn.functional.silu(self.expand(self.norm(x))))
