"""Taking burn-layout tensors out of the export by name, with their shapes checked.

Every tensor is taken exactly once; whatever is left at the end is an error, so a manifest that
disagrees with its weights fails loudly instead of building a model that silently ignores
part of the file (the engine's loader is just as strict).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class WeightReader:
    """Hands out the export's tensors by module path and remembers which were used."""

    def __init__(self, weights: dict[str, np.ndarray], source: str):
        self._weights = dict(weights)
        self._source = source

    def take(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        """The float32 tensor `name`, which must have `shape`."""
        if name not in self._weights:
            raise ValueError(f"{self._source}: missing tensor {name}")
        array = self._weights.pop(name)
        if tuple(array.shape) != tuple(shape):
            raise ValueError(f"{self._source}: tensor {name} has shape {list(array.shape)}, "
                             f"the manifest's shapes make {list(shape)}")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    def linear(self, prefix: str, d_in: int, d_out: int) -> nn.Linear:
        """An `nn.Linear` from burn's `[in, out]` weight (transposed to PyTorch's `[out, in]`) and bias."""
        layer = nn.Linear(d_in, d_out)
        with torch.no_grad():
            layer.weight.copy_(self.take(f"{prefix}.weight", (d_in, d_out)).T)
            layer.bias.copy_(self.take(f"{prefix}.bias", (d_out,)))
        return layer

    def layer_norm(self, prefix: str, d: int) -> nn.LayerNorm:
        """burn's LayerNorm (`gamma`, `beta`, epsilon 1e-5) as `nn.LayerNorm`."""
        layer = nn.LayerNorm(d, eps=1e-5)
        with torch.no_grad():
            layer.weight.copy_(self.take(f"{prefix}.gamma", (d,)))
            layer.bias.copy_(self.take(f"{prefix}.beta", (d,)))
        return layer

    def finish(self) -> None:
        """Fails when the file held tensors the manifest's shapes have no place for."""
        if self._weights:
            names = sorted(self._weights)
            raise ValueError(f"{self._source}: {len(names)} unexpected tensors, first: {names[0]}")
