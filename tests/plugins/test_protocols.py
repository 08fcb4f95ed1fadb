"""Evaluation protocols of the image metrics against transcriptions of the papers' evaluation code, run here on
fixed images: MindEyeV2 ``src/final_evaluations.ipynb`` (PixCorr, SSIM after its 256-px pre-resize) and
Brain-Diffuser ``scripts/evaluate_reconstruction.py`` (SSIM of scikit-image 0.17.2 with ``multichannel=True``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.analyses.common import protocol_metrics
from brain_workbench_plugins.image_metrics import SSIM, PixCorr, ssim_columns


def fixed_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images with edges (a blurred noise field plus a bright square), uint8."""
    rng = np.random.default_rng(seed)
    base = gaussian_filter(rng.random((n, size, size, 3)), sigma=(0, 3, 3, 0))
    base = (base - base.min()) / (base.max() - base.min())
    base[:, size // 4: size // 2, size // 3: 2 * size // 3] += 0.5
    return np.clip(np.rint(base / base.max() * 255), 0, 255).astype(np.uint8)


# ---- transcriptions ----------------------------------------------------------------------------------
def mindeye2_chain(images_uint8: np.ndarray) -> torch.Tensor:
    """final_evaluations.ipynb: float tensors, ``transforms.Resize((256, 256))`` (torchvision 0.15/0.16 on tensors:
    no antialiasing), then ``transforms.Resize(425, BILINEAR)``."""
    from torchvision import transforms

    x = torch.from_numpy(images_uint8).permute(0, 3, 1, 2).contiguous().float() / 255  # MindEye holds NCHW tensors
    x = transforms.Resize((256, 256), antialias=False)(x).float()
    return transforms.Resize(425, interpolation=transforms.InterpolationMode.BILINEAR, antialias=False)(x)


def mindeye2_pixcorr(recons: np.ndarray, images: np.ndarray) -> np.ndarray:
    a, b = mindeye2_chain(images), mindeye2_chain(recons)
    a, b = a.reshape(len(a), -1).cpu(), b.view(len(b), -1).cpu()
    return np.array([np.corrcoef(a[i], b[i])[0][1] for i in range(len(a))])


def mindeye2_ssim(recons: np.ndarray, images: np.ndarray) -> np.ndarray:
    img_gray = rgb2gray(mindeye2_chain(images).permute((0, 2, 3, 1)).cpu())
    recon_gray = rgb2gray(mindeye2_chain(recons).permute((0, 2, 3, 1)).cpu())
    return np.array([structural_similarity(rec, im, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=1.0) for im, rec in zip(img_gray, recon_gray)])


def skimage_0172_ssim(X: np.ndarray, Y: np.ndarray, multichannel: bool = False, data_range: float = 1.0,
                      sigma: float = 1.5) -> float:
    """scikit-image 0.17.2 ``structural_similarity`` with gaussian_weights=True, use_sample_covariance=False: the
    multichannel branch loops over the last axis and averages; each channel is filtered with an N-D Gaussian."""
    if multichannel:
        return float(np.mean([skimage_0172_ssim(X[..., ch], Y[..., ch], False, data_range, sigma)
                              for ch in range(X.shape[-1])]))
    truncate = 3.5
    win_size = 2 * int(truncate * sigma + 0.5) + 1
    X, Y = X.astype(np.float64), Y.astype(np.float64)

    def filter_func(z: np.ndarray) -> np.ndarray:
        return gaussian_filter(z, sigma=sigma, truncate=truncate)

    ux, uy = filter_func(X), filter_func(Y)
    uxx, uyy, uxy = filter_func(X * X), filter_func(Y * Y), filter_func(X * Y)
    vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
    C1, C2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    A1, A2, B1, B2 = 2 * ux * uy + C1, 2 * vxy + C2, ux ** 2 + uy ** 2 + C1, vx + vy + C2
    S = (A1 * A2) / (B1 * B2)
    pad = (win_size - 1) // 2
    cropped = S[tuple(slice(pad, s - pad) for s in S.shape)]
    return float(cropped.mean())


def brain_diffuser_ssim(recons_425: np.ndarray, images_425: np.ndarray) -> np.ndarray:
    out = []
    for gen, gt in zip(recons_425, images_425):
        gen_image, gt_image = rgb2gray(gen / 255.0), rgb2gray(gt / 255.0)
        out.append(skimage_0172_ssim(gen_image, gt_image, multichannel=True, data_range=1.0, sigma=1.5))
    return np.array(out)


# ---- tests ------------------------------------------------------------------------------------------
def test_mindeye2_protocol_equals_its_notebook() -> None:
    images, recons = fixed_images(4, 224, 0), fixed_images(4, 512, 1)
    (pix, ssim), = [protocol_metrics([{"name": "pixcorr"}, {"name": "ssim"}], "mindeye2")]
    ours_pix = PixCorr(**pix["options"]).score(recons, images)
    np.testing.assert_allclose(ours_pix, mindeye2_pixcorr(recons, images), rtol=0, atol=1e-12)
    ours_ssim = SSIM(**ssim["options"]).score(recons, images)
    np.testing.assert_allclose(ours_ssim, mindeye2_ssim(recons, images), rtol=0, atol=1e-6)
    default = PixCorr().score(recons, images)
    assert np.abs(default - ours_pix).max() > 1e-4, "the 256-px pre-resize without antialiasing moves the numbers"


def test_brain_diffuser_ssim_is_scikit_image_0172_per_column() -> None:
    images, recons = fixed_images(3, 425, 2), fixed_images(3, 425, 3)
    (ssim,) = protocol_metrics([{"name": "ssim"}], "brain-diffuser")
    ours = SSIM(**ssim["options"]).score(recons, images)
    np.testing.assert_allclose(ours, brain_diffuser_ssim(recons, images), rtol=0, atol=1e-6)
    two_d = SSIM(size=425).score(recons, images)
    assert np.abs(two_d - ours).min() > 1e-3, "the two SSIMs are different metrics"


def test_ssim_columns_checks_and_reduces_to_one_column() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.random((40, 1)), rng.random((40, 1))
    assert ssim_columns(a, b) == pytest.approx(skimage_0172_ssim(a[:, 0], b[:, 0]), abs=1e-12)
    with pytest.raises(WorkbenchError, match="one shape"):
        ssim_columns(a, b[:30])
    with pytest.raises(WorkbenchError, match="unknown evaluation protocol"):
        protocol_metrics([{"name": "ssim"}], "mindeye9")


class MeanGrey:
    """A network-style metric (its ``label`` names a network) that needs no network."""

    name, kind, label = "grey-gap", "distance", "grey-gap(mean)"

    def score(self, reconstructions, targets):
        return np.abs(reconstructions.mean((1, 2, 3)) - targets.mean((1, 2, 3))) / 255


def test_feature_network_columns_name_their_network_and_mindeye2_resizes_clip_bilinearly() -> None:
    import brain_workbench as wb
    from brain_workbench_plugins.analyses.common import score_images
    from brain_workbench_plugins.image_metrics import TwoWay

    wb.register("grey-gap", MeanGrey, kind="image-metric", replace=True)
    images, recons = fixed_images(4, 32, 4), fixed_images(4, 32, 5)
    row, arrays = score_images([{"name": "grey-gap", "options": {}}, {"name": "pixcorr", "options": {"size": 32}},
                                {"name": "grey-gap", "options": {}, "label": "mine"}], recons, images, 0)
    assert {"grey-gap(mean)", "shuffled_grey-gap(mean)", "pixcorr", "mine"} <= set(row)
    assert "image_grey-gap(mean)" in arrays
    assert TwoWay(network="efficientnet-lite0").label == "two-way(efficientnet-lite0)", "the column a sweep writes"
    (spec,) = protocol_metrics([{"name": "two-way", "options": {"network": "efficientnet-lite0"}}], "mindeye2")
    assert TwoWay(**spec["options"]).net.interpolation == "bilinear" and TwoWay().net.interpolation == "bicubic"
