"""The Conformer convolution module (engine/src/model/convolution.rs).

LayerNorm -> pointwise (d -> 2c) -> GLU -> zero the padded frames -> depthwise conv (kernel k,
'same' padding) -> BatchNorm (running statistics) -> Swish -> pointwise (c -> d).

Padded frames are zeroed before the depthwise kernel so it cannot smear them into real frames.
Pruned channels are absent; the constant a removed channel still fed the last pointwise layer
was moved into its bias by the surgery, so nothing extra is needed here.
"""

from __future__ import annotations

import torch
from torch import nn

from .weights import WeightReader


class ConvModule(nn.Module):
    """`[b, s, d]`, padding `[b, s]` (True on padded frames) -> `[b, s, d]`."""

    def __init__(self, reader: WeightReader, prefix: str, d_model: int, channels: int, kernel: int):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"depthwise kernel size must be odd, got {kernel}")
        self.norm = reader.layer_norm(f"{prefix}.norm", d_model)
        self.pointwise_in = reader.linear(f"{prefix}.pointwise_in", d_model, 2 * channels)
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2, groups=channels)
        self.batch_norm = nn.BatchNorm1d(channels, eps=1e-5)
        with torch.no_grad():
            self.depthwise.weight.copy_(reader.take(f"{prefix}.depthwise.weight", (channels, 1, kernel)))
            self.depthwise.bias.copy_(reader.take(f"{prefix}.depthwise.bias", (channels,)))
            self.batch_norm.weight.copy_(reader.take(f"{prefix}.batch_norm.gamma", (channels,)))
            self.batch_norm.bias.copy_(reader.take(f"{prefix}.batch_norm.beta", (channels,)))
            self.batch_norm.running_mean.copy_(reader.take(f"{prefix}.batch_norm.running_mean", (channels,)))
            self.batch_norm.running_var.copy_(reader.take(f"{prefix}.batch_norm.running_var", (channels,)))
        self.pointwise_out = reader.linear(f"{prefix}.pointwise_out", channels, d_model)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.glu(self.pointwise_in(self.norm(x)), dim=-1)  # [b, s, c]
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        x = self.depthwise(x.transpose(1, 2))  # [b, c, s]
        x = torch.nn.functional.silu(self.batch_norm(x)).transpose(1, 2)  # [b, s, c]
        return self.pointwise_out(x)
