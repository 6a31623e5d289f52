"""4x convolutional subsampling (engine/src/model/subsampling.rs).

Two 3x3 convolutions, stride 2, no padding, each followed by ReLU, then a linear projection of
(channels x reduced mel bins) to the model width. Time is the convolutions' height axis.
"""

from __future__ import annotations

import torch
from torch import nn

from .weights import WeightReader


def halve(length: torch.Tensor) -> torch.Tensor:
    """Frames after one 3x3 stride-2 valid convolution: `(t - 3) // 2 + 1`, or 0 below 3 frames.

    Written as `max((t - 1) // 2, 0)`, which is the same for every t >= 0 and exports to ONNX
    without a branch.
    """
    return torch.clamp(torch.div(length - 1, 2, rounding_mode="floor"), min=0)


def output_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Subsampled frames for `frames` input frames (int64 tensor): two halvings."""
    return halve(halve(frames))


def reduced_bins(num_bins: int) -> int:
    """Mel bins left after both convolutions."""
    once = max((num_bins - 1) // 2, 0)
    return max((once - 1) // 2, 0)


class ConvSubsampling(nn.Module):
    """`[b, t, f]` normalised features -> `[b, s, d]`, `s = output_lengths(t)`."""

    def __init__(self, reader: WeightReader, num_bins: int, channels: int, d_model: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, kernel_size=3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size=3, stride=2)
        with torch.no_grad():
            # burn stores convolution kernels as PyTorch does: [out, in / groups, kh, kw].
            self.conv1.weight.copy_(reader.take("subsampling.conv1.weight", (channels, 1, 3, 3)))
            self.conv1.bias.copy_(reader.take("subsampling.conv1.bias", (channels,)))
            self.conv2.weight.copy_(reader.take("subsampling.conv2.weight", (channels, channels, 3, 3)))
            self.conv2.bias.copy_(reader.take("subsampling.conv2.bias", (channels,)))
        self.projection = reader.linear("subsampling.projection", channels * reduced_bins(num_bins), d_model)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.unsqueeze(1)  # [b, 1, t, f]
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))  # [b, c, s, f/4]
        x = x.transpose(1, 2).flatten(2)  # [b, s, c * f/4], channel-major as in the engine
        return self.projection(x)
