"""Latent ascent through an image decoder: Adam on seeded latents so that the decoded images maximise each
image's target of an objective, under image-space regularisers — random jitter and scale augmentations each
step (the objective must hold for shifted, rescaled copies, which suppresses adversarial pixel patterns) and a
total-variation penalty. Pure torch; the synthesis analysis and benchmarks/synthesis.py call it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AscentOptions:
    steps: int = 30
    lr: float = 0.1
    tv: float = 1.0
    jitter: int = 4
    scale: float = 0.1
    init_sd: float = 0.8
    seed: int = 0


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of neighbouring pixels, per image (B,)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).flatten(1).mean(1)
    return dx + dy


def augment(images: torch.Tensor, jitter: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """One random rescaling (factor in [1-scale, 1+scale], resized back by centre crop or reflection pad) and one
    random shift of up to ``jitter`` pixels (circular), shared by the batch, drawn from ``generator``."""
    side = images.shape[-1]
    if scale > 0:
        factor = 1 + scale * (2 * float(torch.rand((), generator=generator)) - 1)
        new = max(8, round(side * factor))
        images = F.interpolate(images, size=(new, new), mode="bilinear", align_corners=False)
        if new > side:
            start = (new - side) // 2
            images = images[..., start:start + side, start:start + side]
        elif new < side:
            before = (side - new) // 2
            images = F.pad(images, (before, side - new - before, before, side - new - before), mode="reflect")
    if jitter > 0:
        dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=generator))
        images = torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
    return images


def start_latents(n: int, shape: tuple[int, ...], sd: float, seed: int) -> torch.Tensor:
    """Seeded starting latents (n, *shape): the same seed gives the same starts for guided and unguided runs."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((n, *shape), generator=generator) * sd


def latent_ascent(decode: Callable[[torch.Tensor], torch.Tensor], objective: Callable[[torch.Tensor], torch.Tensor],
                  columns: torch.Tensor, latents: torch.Tensor, options: AscentOptions, guided: bool = True,
                  centre: torch.Tensor | None = None, spread: torch.Tensor | None = None) -> torch.Tensor:
    """Optimise ``latents`` so that image i raises ``objective(images)[i, columns[i]]`` (standardised by
    ``centre``/``spread`` per column); ``guided=False`` runs the same loop with the regulariser alone (the
    control on the same seeds). Returns the final decoded images (B, 3, H, W) in [0, 1]."""
    z = latents.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=options.lr)
    generator = torch.Generator().manual_seed(options.seed + 1)
    rows = torch.arange(len(columns))
    for _ in range(options.steps):
        optimiser.zero_grad(set_to_none=True)
        images = decode(z).clamp(0, 1)
        loss = options.tv * total_variation(images).sum()
        if guided:
            scores = objective(augment(images, options.jitter, options.scale, generator))
            picked = scores[rows, columns.to(scores.device)]
            if centre is not None and spread is not None:
                picked = (picked - centre.to(picked.device)[columns]) / spread.to(picked.device)[columns]
            loss = loss - picked.sum()
        if loss.requires_grad:
            loss.backward()
            optimiser.step()
    with torch.no_grad():
        return decode(z).clamp(0, 1)
