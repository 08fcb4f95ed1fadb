"""EEG encoders of the zero-shot literature, in torch: NICE's TSConv and ATM-S (channel attention + TSConv),
each followed by NICE's residual projection to the embedding width.

Written from the papers' descriptions (Song et al., ICLR 2024; Li et al., NeurIPS 2024) with NICE's defaults
(40 filters, temporal kernel 25, average pooling 51/5, dropout 0.5); kernels shrink to fit short inputs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ARCHS = ("tsconv", "atms")


def conv_sizes(n_times: int, temporal_kernel: int, pool: int, pool_stride: int) -> dict[str, int]:
    """The temporal kernel, pooling window and stride that fit ``n_times`` samples, and the pooled length."""
    kernel = max(1, min(temporal_kernel, n_times))
    length = n_times - kernel + 1
    window = max(1, min(pool, length))
    stride = max(1, min(pool_stride, window))
    return {"temporal_kernel": kernel, "pool": window, "pool_stride": stride,
            "pooled": (length - window) // stride + 1}


class TSConv(nn.Module):
    """Temporal convolution(s) → average pooling → spatial convolution over all channels → 1×1 projection."""

    def __init__(self, n_channels: int, n_times: int, width: int, depth: int, dropout: float,
                 temporal_kernel: int, pool: int, pool_stride: int) -> None:
        super().__init__()
        sizes = conv_sizes(n_times, temporal_kernel, pool, pool_stride)
        temporal: list[nn.Module] = [nn.Conv2d(1, width, (1, sizes["temporal_kernel"]))]
        for _ in range(depth - 1):
            temporal += [nn.BatchNorm2d(width), nn.ELU(), nn.Conv2d(width, width, (1, 9), padding=(0, 4))]
        self.net = nn.Sequential(
            *temporal, nn.AvgPool2d((1, sizes["pool"]), (1, sizes["pool_stride"])), nn.BatchNorm2d(width), nn.ELU(),
            nn.Conv2d(width, width, (n_channels, 1)), nn.BatchNorm2d(width), nn.ELU(), nn.Dropout(dropout),
            nn.Conv2d(width, width, (1, 1)))
        self.out_features = width * sizes["pooled"]
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.unsqueeze(1)).flatten(1)


class ChannelAttention(nn.Module):
    """ATM's channel-wise attention: each channel's time course is a token; a transformer mixes channels."""

    def __init__(self, n_channels: int, n_times: int, d_model: int, heads: int, depth: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(n_times, d_model)
        self.position = nn.Parameter(torch.zeros(1, n_channels, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.back = nn.Linear(d_model, n_times)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.back(self.encoder(self.embed(x) + self.position))


class Projection(nn.Module):
    """NICE's projection: linear to the embedding width, a residual GELU block, layer norm."""

    def __init__(self, n_in: int, n_out: int, dropout: float) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.block = nn.Sequential(nn.GELU(), nn.Linear(n_out, n_out), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        return self.norm(x + self.block(x))


class EEGEncoder(nn.Module):
    """trials × channels × times → trials × embedding width, with a learned InfoNCE logit scale."""

    def __init__(self, arch: str, n_channels: int, n_times: int, n_out: int, width: int = 40, depth: int = 1,
                 dropout: float = 0.5, temporal_kernel: int = 25, pool: int = 51, pool_stride: int = 5,
                 d_model: int = 64, heads: int = 4, init_temperature: float = 0.07) -> None:
        super().__init__()
        self.attention = ChannelAttention(n_channels, n_times, d_model, heads, depth, dropout) \
            if arch == "atms" else None
        self.tsconv = TSConv(n_channels, n_times, width, 1 if arch == "atms" else depth, dropout, temporal_kernel,
                             pool, pool_stride)
        self.projection = Projection(self.tsconv.out_features, n_out, dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1.0 / init_temperature)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.attention is not None:
            x = self.attention(x)
        return self.projection(self.tsconv(x))


def info_nce(pred: torch.Tensor, target: torch.Tensor, logit_scale: Any) -> torch.Tensor:
    """CLIP's symmetric InfoNCE of paired rows with ``exp(logit_scale)`` times cosine similarity as logits."""
    import torch.nn.functional as F

    logits = logit_scale.exp() * F.normalize(pred, dim=1) @ F.normalize(target, dim=1).T
    labels = torch.arange(len(pred), device=pred.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
