"""Reconstruction metrics against independent reference computations (torchvision resizes, numpy, scikit-image,
scipy, MindEye's two-way loop); feature networks on random weights loaded through the weights= option."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

import brain_workbench as wb
from brain_workbench.plugin.testing import check_image_metric, sample_images
from brain_workbench.types import WorkbenchError
from brain_workbench_plugins.image_metrics import NETWORKS, two_way_per_image

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def metric(name: str, **options):
    return wb.get_registry().create("image-metric", name, **options)


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    """Targets at 96 px and noisy, blurred 64 px reconstructions of them (different sizes on purpose)."""
    targets = sample_images(5, 96, seed=2)
    rng = np.random.default_rng(0)
    small = targets[:, ::3, ::3].repeat(2, 1).repeat(2, 2)
    recons = np.clip(small.astype(np.int16) + rng.integers(-50, 51, small.shape), 0, 255).astype(np.uint8)
    return recons, targets


def torch_resized(images: np.ndarray, size: int, mode=TF.InterpolationMode.BILINEAR) -> torch.Tensor:
    """MindEye's preprocessing path: float [0, 1] tensors through torchvision's Resize."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return TF.resize(x, [size, size], interpolation=mode, antialias=True)


def mindeye_two_way(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """MindEye's two_way_identification loop, per reconstruction instead of averaged."""
    n = len(true)
    r = np.corrcoef(true, pred)[:n, n:]
    congruents = np.diag(r)
    return np.sum(r < congruents, 0) / (n - 1)


def test_registration_imports_no_torch() -> None:
    code = "import sys, brain_workbench_plugins.image_metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_pixcorr_matches_torchvision_and_numpy(pairs) -> None:
    recons, targets = pairs
    a, b = torch_resized(recons, 425), torch_resized(targets, 425)
    ref = [np.corrcoef(a[i].flatten().numpy(), b[i].flatten().numpy())[0, 1] for i in range(len(a))]
    np.testing.assert_allclose(metric("pixcorr").score(recons, targets), ref, atol=1e-6)
    assert metric("pixcorr").score(targets, targets) == pytest.approx(np.ones(5))


def test_ssim_matches_scikit_image_with_mindeye_settings(pairs) -> None:
    from skimage.color import rgb2gray
    from skimage.metrics import structural_similarity

    recons, targets = pairs
    a = rgb2gray(torch_resized(recons, 425).permute(0, 2, 3, 1).double().numpy())
    b = rgb2gray(torch_resized(targets, 425).permute(0, 2, 3, 1).double().numpy())
    ref = [structural_similarity(a[i], b[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1.0) for i in range(len(a))]
    ours = metric("ssim").score(recons, targets)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    defaults = [structural_similarity(a[i], b[i], data_range=1.0) for i in range(len(a))]
    assert np.abs(ours - defaults).max() > 1e-3, "scikit-image's default window gives other numbers"
    grey = np.array([0.2125, 0.7154, 0.0721])
    np.testing.assert_allclose(rgb2gray(np.eye(3)[None]), grey[None], atol=1e-12)


def test_two_way_matches_mindeye_loop_and_counts_ties_as_failures() -> None:
    rng = np.random.default_rng(0)
    true = rng.standard_normal((12, 30))
    pred = true + 1.5 * rng.standard_normal((12, 30))
    np.testing.assert_array_equal(two_way_per_image(pred, true), mindeye_two_way(pred, true))
    tied = np.stack([true[0], true[0], true[1]])
    values = two_way_per_image(tied, tied)  # recon 0 is as close to target 1 as to its own target
    assert values[0] == 0.5 and values[1] == 0.5 and values[2] == 1.0
    assert mindeye_two_way(tied, tied)[0] == 0.5


@pytest.mark.parametrize("name", ["pixcorr", "ssim", "two-way", "correlation-distance"])
def test_conformance(name: str) -> None:
    check_image_metric(metric(name, device="cpu") if "-" in name else metric(name))


def test_shipped_network_runs_offline(pairs) -> None:
    recons, targets = pairs
    two_way = metric("two-way", device="cpu")
    assert two_way.label == "two-way(efficientnet-lite0)" and two_way.kind == "similarity"
    assert np.all(two_way.score(targets, targets) == 1.0)
    distance = metric("correlation-distance", device="cpu")
    assert distance.kind == "distance"
    d = distance.score(recons, targets)
    enc = wb.encoder("efficientnet", device="cpu")
    from PIL import Image

    feats = [enc.encode([Image.fromarray(im) for im in x], ["pooled"])["pooled"] for x in (recons, targets)]
    from scipy.spatial.distance import correlation

    np.testing.assert_allclose(d, [correlation(feats[0][i], feats[1][i]) for i in range(5)], atol=1e-6)


# ---- torchvision / open_clip networks on random weights -------------------------------------


def _alexnet(tmp: Path):
    import torchvision.models as tvm

    net = tvm.alexnet().eval()
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith("features.")}, tmp)
    return net


def _efficientnet_b1(tmp: Path):
    import torchvision.models as tvm

    net = tvm.efficientnet_b1().eval()
    torch.save(net.state_dict(), tmp)  # a whole torchvision checkpoint, classifier included
    return net


def _inception(tmp: Path):
    import torchvision.models as tvm

    net = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True).eval()
    torch.save(net.state_dict(), tmp)
    return net


def _swav(tmp: Path):
    import torchvision.models as tvm

    net = tvm.resnet50().eval()
    state = {f"module.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    state["module.projection_head.0.weight"] = torch.zeros(2048, 2048)  # as in SwAV's checkpoint
    state["module.prototypes.weight"] = torch.zeros(3000, 128)
    torch.save(state, tmp)
    return net


def _hooked(module, tap):
    out = {}
    handle = tap.register_forward_hook(lambda m, i, o: out.__setitem__("x", o))
    return out, handle


REFERENCES = {
    # network: (build and save, reference features from the torch module)
    "alexnet2": (_alexnet, lambda net, x: net.features[:5](x)),
    "alexnet5": (_alexnet, lambda net, x: net.features[:12](x)),
    "efficientnet-b1": (_efficientnet_b1, lambda net, x: net.avgpool(net.features(x))),
    "swav": (_swav, None),
    "inception": (_inception, None),
}


@pytest.mark.parametrize("network", sorted(REFERENCES))
def test_torchvision_networks_load_local_weights(network: str, tmp_path: Path) -> None:
    build, reference = REFERENCES[network]
    path = tmp_path / "weights.pth"
    torch.manual_seed(0)
    net = build(path)
    targets = sample_images(3, 64, seed=5)
    recons = np.ascontiguousarray(targets[::-1])
    spec = NETWORKS[network]
    x = TF.normalize(torch_resized(targets, spec.size), *IMAGENET)
    with torch.no_grad():
        if reference is not None:
            ref = reference(net, x)
        else:
            out, handle = _hooked(net, net.avgpool)
            net(x)
            handle.remove()
            ref = out["x"]
    ref = ref.reshape(3, -1).double().numpy()
    two_way = metric("two-way", network=network, weights=str(path), device="cpu")
    ours = two_way.net.features(targets)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
    ref_recon = two_way.net.features(recons)
    np.testing.assert_array_equal(two_way.score(recons, targets), mindeye_two_way(ref_recon, ours))
    distance = metric("correlation-distance", network=network, weights=str(path), device="cpu")
    from scipy.spatial.distance import correlation

    np.testing.assert_allclose(distance.score(recons, targets),
                               [correlation(ref_recon[i], ours[i]) for i in range(3)], atol=1e-8)


def test_clip_network_embeds_with_open_clip(tmp_path: Path) -> None:
    import open_clip

    model = open_clip.create_model("ViT-S-32", pretrained=None).eval()
    path = tmp_path / "clip.pth"
    torch.save({f"visual.{k}": v for k, v in model.visual.state_dict().items()} | {"logit_scale": model.logit_scale.data}, path)
    targets = sample_images(3, 64, seed=6)
    x = TF.normalize(torch_resized(targets, 224, TF.InterpolationMode.BICUBIC), *NETWORKS["clip"].norm)
    with torch.no_grad():
        ref = model.encode_image(x).double().numpy()
    two_way = metric("two-way", network="clip", clip_model="ViT-S-32", weights=str(path), device="cpu")
    np.testing.assert_allclose(two_way.net.features(targets), ref, rtol=1e-4, atol=1e-5)
    assert np.all(two_way.score(targets, targets) == 1.0)


def test_networks_refuse_without_usable_weights(tmp_path: Path) -> None:
    for network, spec in NETWORKS.items():
        if spec.weights_file is None:
            continue
        with pytest.raises(WorkbenchError) as exc:
            metric("two-way", network=network)
        assert spec.weights_file in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(WorkbenchError, match="does not exist"):
        metric("correlation-distance", network="swav", weights=str(tmp_path / "missing.pth.tar"))
    with pytest.raises(WorkbenchError, match="option network='vgg16' is not one of"):
        metric("two-way", network="vgg16")

    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, tmp_path / "partial.pth")
    with pytest.raises(WorkbenchError) as exc:
        metric("two-way", network="alexnet5", weights=str(tmp_path / "partial.pth"), device="cpu").score(
            sample_images(2, 32), sample_images(2, 32))
    assert "lacks" in str(exc.value) and "features.0.bias" in str(exc.value)

    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "shape.pth")
    with pytest.raises(WorkbenchError, match=r"'features.0.weight' has shape \(64, 3, 3, 3\)"):
        metric("two-way", network="alexnet2", weights=str(tmp_path / "shape.pth"), device="cpu").score(
            sample_images(2, 32), sample_images(2, 32))

    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WorkbenchError, match="cannot read"):
        metric("two-way", network="inception", weights=str(tmp_path / "junk.pth"), device="cpu").score(
            sample_images(2, 32), sample_images(2, 32))


def test_bad_inputs(pairs) -> None:
    recons, targets = pairs
    with pytest.raises(WorkbenchError, match="one reconstruction per seen image"):
        metric("pixcorr").score(recons[:3], targets)
    with pytest.raises(WorkbenchError, match="uint8"):
        metric("ssim").score(recons / 255.0, targets)
    with pytest.raises(WorkbenchError, match="at least 2"):
        metric("two-way", device="cpu").score(recons[:1], targets[:1])
    with pytest.raises(WorkbenchError, match="has no option"):
        metric("pixcorr", network="alexnet2")


def test_feature_network_runs_each_distinct_image_once(pairs) -> None:
    from brain_workbench_plugins.image_metrics import FeatureNetwork

    recons, targets = pairs
    net = FeatureNetwork("efficientnet-lite0", device="cpu")
    passes = []
    forward = net._forward
    net._forward = lambda images: passes.append(len(images)) or forward(images)
    direct = forward(targets)
    order = np.random.default_rng(0).permutation(len(targets))
    np.testing.assert_allclose(net.features(targets), direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.features(targets[order]), direct[order], rtol=1e-5, atol=1e-6)
    repeated = np.repeat(recons[:1], len(targets), axis=0)
    np.testing.assert_allclose(net.features(repeated), np.repeat(forward(recons[:1]), len(targets), axis=0),
                               rtol=1e-5, atol=1e-6)
    assert passes == [len(targets), 1]
