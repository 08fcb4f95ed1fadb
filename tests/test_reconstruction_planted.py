"""Planted structure, brain → image: responses are a noisy linear mix of TAEF2 latents of procedural images.

Ridge (brain_workbench.numerics.ridge) maps training responses to latents, test latents are predicted and decoded
through TAEF2, and the reconstructions must beat a shuffled pairing and the mean training image on
PixCorr, SSIM and two-way identification (the shipped EfficientNet-Lite0). Images are 40 px so the
whole pipeline stays around 15 s on two CPU cores.
"""

from __future__ import annotations

import numpy as np

import brain_workbench as wb
from brain_workbench.numerics.ridge import ridge_cv
from brain_workbench.store.images import to_uint8
from brain_workbench_plugins.image_metrics import two_way_per_image

SIZE, N_TRAIN, N_TEST, N_VOXELS, NOISE = 40, 100, 16, 1000, 0.5


def procedural(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth colour gradients with two or three flat discs and squares of random colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        slope = rng.uniform(-1.5, 1.5, (2, 3))
        img = np.clip(rng.uniform(0.2, 0.8, 3) + slope[0] * (xx[..., None] - 0.5) + slope[1] * (yy[..., None] - 0.5), 0, 1)
        for _ in range(rng.integers(2, 4)):
            cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.22)
            disc = rng.random() < 0.5
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2 if disc else (abs(yy - cy) < r) & (abs(xx - cx) < r)
            img[mask] = rng.uniform(0, 1, 3)
        out[i] = np.rint(img * 255)
    return out


def test_planted_latents_reconstruct_better_than_shuffled_and_mean() -> None:
    registry = wb.get_registry()
    rng = np.random.default_rng(1)
    images = procedural(N_TEST + N_TRAIN, SIZE, seed=1)
    codec = registry.create("codec", "taef2", image_size=SIZE, device="cpu", batch_size=32)
    latents = codec.encode(images)
    assert latents.shape == (len(images), 32 * (SIZE // 8) ** 2)

    z = (latents - latents.mean(0)) / latents.std(0)
    signal = z @ rng.standard_normal((z.shape[1], N_VOXELS))
    brain = (signal / signal.std(0) + NOISE * rng.standard_normal(signal.shape)).astype(np.float32)
    test, train = np.arange(N_TEST), np.arange(N_TEST, N_TEST + N_TRAIN)
    fit = ridge_cv(brain[train], latents[train], np.logspace(-1, 5, 13), cv=5)
    assert fit.method == "dual"  # 1000 voxels > 100 training trials: the kernel form
    predicted = brain[test] @ fit.coef + fit.intercept
    recons = codec.decode(predicted.astype(np.float32))
    targets = images[test]
    shuffle = np.roll(np.arange(N_TEST), 7)
    shuffled = recons[shuffle]
    mean_image = np.repeat(to_uint8(images[train].mean(0, keepdims=True) / 255), N_TEST, 0)

    scores = {}
    for name in ("pixcorr", "ssim"):
        metric = registry.create("image-metric", name)
        scores[name] = [float(metric.score(x, targets).mean()) for x in (recons, shuffled, mean_image)]
    network = registry.create("image-metric", "two-way", device="cpu").net  # features once, pairings three ways
    f_recon, f_target, f_mean = (network.features(x) for x in (recons, targets, mean_image[:1]))
    scores["two-way"] = [float(two_way_per_image(f, f_target).mean())
                         for f in (f_recon, f_recon[shuffle], np.repeat(f_mean, N_TEST, 0))]

    pix, ssim, ident = scores["pixcorr"], scores["ssim"], scores["two-way"]
    assert pix[0] > 0.6 and pix[0] > pix[1] + 0.4 and pix[0] > pix[2] + 0.4, scores
    assert ssim[0] > ssim[1] + 0.04 and ssim[0] > ssim[2] + 0.03, scores
    assert ident[0] > 0.65 and ident[0] > ident[1] + 0.15, scores
    assert abs(ident[2] - 0.5) < 1e-12, "identical reconstructions identify at exactly chance"
