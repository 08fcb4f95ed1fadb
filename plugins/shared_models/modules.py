"""The torch modules of the shared models, at module level so that fitted models pickle."""

from __future__ import annotations

import torch
from torch import nn


class SharedHead(nn.Module):
    """Linear path from the latent to the target plus a residual one-hidden-layer MLP."""

    def __init__(self, k: int, d: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.skip = nn.Linear(k, d)
        self.mlp = nn.Sequential(nn.Linear(k, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, d)) if hidden > 0 else None

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        out = self.skip(latent)
        return out if self.mlp is None else out + self.mlp(latent)


class FeatureTransform(nn.Module):
    """``x A + a`` plus an optional residual MLP whose output layer starts at zero."""

    def __init__(self, d: int, k: int, hidden: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d, k)
        self.mlp = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, k)) if hidden > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x)
        return out if self.mlp is None else out + self.mlp(x)
