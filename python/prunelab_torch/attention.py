"""Self-attention with a learned relative-position bias per head (engine/src/model/attention.rs).

After pruning, every remaining head has its own query/key width and its own value width (a
head may keep value dimensions but no query dimension: it then attends by position alone).
As the engine does (engine/src/model/head_layout.rs), the compact per-head weights are spread
out once, here at load time, so that every head occupies the block's widest width with zero
columns after its own. Zero query/key columns add nothing to a logit and zero value columns
meet zero rows of the output projection, so one batched matmul over `[b, h, s, width]` computes
exactly what the compact heads do, and the graph has no per-head loop (simpler ONNX).

The logit scale stays `1 / sqrt(d / h)` of the unpruned model. Padded keys get -1e9 (not -inf)
before the softmax, as in the engine.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .weights import WeightReader


def spread_heads(tensor: torch.Tensor, widths: list[int], dim: int) -> torch.Tensor:
    """`tensor` whose `dim` holds heads of `widths` back to back -> every head `max(widths)` wide,
    zero-filled after each head's own entries."""
    width = max(widths)
    parts = []
    offset = 0
    for w in widths:
        part = tensor.narrow(dim, offset, w)
        if w < width:
            pad_shape = list(tensor.shape)
            pad_shape[dim] = width - w
            part = torch.cat([part, tensor.new_zeros(pad_shape)], dim=dim)
        parts.append(part)
        offset += w
    return torch.cat(parts, dim=dim)


def _padded_linear(reader: WeightReader, prefix: str, d_in: int, widths: list[int], side: str) -> nn.Linear:
    """A linear layer whose compact head side (`out` or `in`) is laid out at the common width."""
    total, padded = sum(widths), max(widths) * len(widths)
    weight_in_out = reader.take(f"{prefix}.weight", (d_in, total) if side == "out" else (total, d_in))
    bias = reader.take(f"{prefix}.bias", (total,) if side == "out" else (d_in,))
    if side == "out":  # [d, Σw] -> [d, h·W]; the bias follows the heads
        weight_in_out = spread_heads(weight_in_out, widths, 1)
        bias = spread_heads(bias, widths, 0)
        layer = nn.Linear(d_in, padded)
    else:  # [Σw, d] -> [h·W, d]; the bias belongs to the model width
        weight_in_out = spread_heads(weight_in_out, widths, 0)
        layer = nn.Linear(padded, d_in)
    with torch.no_grad():
        layer.weight.copy_(weight_in_out.T)
        layer.bias.copy_(bias)
    return layer


class RelPosSelfAttention(nn.Module):
    """`[b, s, d]`, padding `[b, s]` (True on padded frames) -> `[b, s, d]` (before the residual)."""

    def __init__(self, reader: WeightReader, prefix: str, d_model: int, head_dim: int,
                 max_rel_distance: int, query_widths: list[int], value_widths: list[int]):
        super().__init__()
        self.heads = len(value_widths)
        self.query_width = max(query_widths) if query_widths else 0
        self.value_width = max(value_widths)
        self.max_rel_distance = max_rel_distance
        self.scale = math.sqrt(head_dim)
        self.norm = reader.layer_norm(f"{prefix}.norm", d_model)
        if sum(query_widths) > 0:
            self.query = _padded_linear(reader, f"{prefix}.query", d_model, query_widths, "out")
            self.key = _padded_linear(reader, f"{prefix}.key", d_model, query_widths, "out")
        else:  # every head lost its query dimensions: attention by position alone
            self.query = None
            self.key = None
        self.value = _padded_linear(reader, f"{prefix}.value", d_model, value_widths, "out")
        self.output = _padded_linear(reader, f"{prefix}.output", d_model, value_widths, "in")
        rel_bias = reader.take(f"{prefix}.rel_bias", (2 * max_rel_distance + 1, self.heads))
        self.rel_bias = nn.Parameter(rel_bias, requires_grad=False)  # [2R + 1, h]

    def position_bias(self, s: int, device: torch.device) -> torch.Tensor:
        """`[h, s, s]`: `rel_bias[clamp(j - i, -R, R) + R, h]` for query i and key j."""
        pos = torch.arange(s, device=device)
        r = self.max_rel_distance
        index = torch.clamp(pos.unsqueeze(0) - pos.unsqueeze(1), -r, r) + r  # [s, s]
        return self.rel_bias[index].permute(2, 0, 1)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        s = x.shape[1]
        x = self.norm(x)
        bias = self.position_bias(s, x.device).unsqueeze(0)  # [1, h, s, s]
        v = self.value(x).unflatten(-1, (self.heads, self.value_width)).transpose(1, 2)  # [b, h, s, wv]
        if self.query is not None:
            q = self.query(x).unflatten(-1, (self.heads, self.query_width)).transpose(1, 2)  # [b, h, s, wq]
            k = self.key(x).unflatten(-1, (self.heads, self.query_width)).transpose(1, 2)
            logits = torch.matmul(q, k.transpose(2, 3)) / self.scale + bias  # [b, h, s, s]
        else:
            logits = bias.expand(x.shape[0], -1, -1, -1)
        logits = logits.masked_fill(padding[:, None, None, :], -1e9)
        weights = torch.softmax(logits, dim=-1)
        context = torch.matmul(weights, v)  # [b, h, s, wv]
        return self.output(context.transpose(1, 2).flatten(2))  # [b, s, d]
