"""The TAEF2 network in torch, laid out so the published state dicts load strictly.

TAEF2 is TAESD's tiny autoencoder (convolutions of 64 channels, three stride-2 stages, 8× spatial
reduction) with 32 latent channels and, in the three blocks next to the latent on each side, a
"pool" branch: 1×1 convolution to 256 channels, GroupNorm with 4 groups, ReLU, 1×1 convolution back
to 64, added to the block's input before its convolutions. The state dict's shapes fix every layer
but the GroupNorm's group count; 4 groups round-trip the scikit-image photographs 2–13 dB (PSNR)
better than 1, 2, 8, 16, 32 or 256 groups (tests/plugins/test_taef2.py checks 4 against 1 and 8).

Encoder input: RGB in [0, 1]; decoder output: RGB, clamped to [0, 1] by the caller. The decoder's
first step squashes latents smoothly into (-3, 3) with 3·tanh(x/3), as TAESD does.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 64
LATENT_CHANNELS = 32
POOL_WIDTH = 4 * WIDTH
POOL_GROUPS = 4
DOWNSCALE = 8


def _conv(n_in: int, n_out: int, **kwargs) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, **kwargs)


class SoftClamp(nn.Module):
    """3·tanh(x/3): keeps decoder inputs in (-3, 3) without a hard cut."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3×3 convolutions with ReLUs, plus identity, then ReLU; optionally the pooled-norm branch first."""

    def __init__(self, pool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(WIDTH, WIDTH), nn.ReLU(), _conv(WIDTH, WIDTH), nn.ReLU(), _conv(WIDTH, WIDTH))
        self.skip = nn.Identity()
        self.fuse = nn.ReLU()
        self.pool = (nn.Sequential(nn.Conv2d(WIDTH, POOL_WIDTH, 1, bias=False), nn.GroupNorm(POOL_GROUPS, POOL_WIDTH),
                                   nn.ReLU(), nn.Conv2d(POOL_WIDTH, WIDTH, 1, bias=False)) if pool else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def _down() -> nn.Conv2d:
    return _conv(WIDTH, WIDTH, stride=2, bias=False)


def _up() -> list[nn.Module]:
    return [nn.Upsample(scale_factor=2), _conv(WIDTH, WIDTH, bias=False)]


def encoder() -> nn.Sequential:
    """RGB (n, 3, H, W) in [0, 1] → latents (n, 32, H/8, W/8); indices match the checkpoint's keys."""
    return nn.Sequential(
        _conv(3, WIDTH), Block(),
        _down(), Block(), Block(), Block(),
        _down(), Block(), Block(), Block(),
        _down(), Block(pool=True), Block(pool=True), Block(pool=True),
        _conv(WIDTH, LATENT_CHANNELS),
    )


def decoder() -> nn.Sequential:
    """Latents (n, 32, h, w) → RGB (n, 3, 8h, 8w), about [0, 1]; indices match the checkpoint's keys."""
    return nn.Sequential(
        SoftClamp(), _conv(LATENT_CHANNELS, WIDTH), nn.ReLU(),
        Block(pool=True), Block(pool=True), Block(pool=True), *_up(),
        Block(), Block(), Block(), *_up(),
        Block(), Block(), Block(), *_up(),
        Block(), _conv(WIDTH, 3),
    )
