"""Tiny deterministic encoders that sweep tests register, so a sweep runs in seconds."""

from __future__ import annotations

import numpy as np

from brain_workbench.types import LayerInfo, digest


class ColourEncoder:
    """Colour statistics of each image: a cheap deterministic 6-feature encoder."""

    name = "colour-test"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        return {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays])}

    def fingerprint(self) -> str:
        return digest("colour-test", 1)


class PixelEncoder:
    """A "pixel receptive field" encoder with a known gradient: each image's colours averaged over a
    ``grid`` × ``grid`` array of patches (layer ``pixels``), and their squares (layer ``energy``); its
    differentiable path runs the same torch ops on float images, so it equals ``encode`` exactly."""

    name = "pixel-test"
    modality = "image"
    grid = 4

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("pixels", 0.5), LayerInfo("energy", 1.0)]

    def differentiable(self, layer: str):
        import torch

        grid = self.grid

        class Pixels(torch.nn.Module):
            def forward(self, images):
                x = torch.nn.functional.adaptive_avg_pool2d(images.float(), grid).flatten(1)
                return x if layer == "pixels" else x ** 2

        return Pixels()

    def encode(self, batch, layers):
        import torch

        x = torch.stack([torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1) for im in batch]).float() / 255
        with torch.no_grad():
            return {layer: self.differentiable(layer)(x).numpy().astype(np.float32) for layer in layers}

    def fingerprint(self) -> str:
        return digest("pixel-test", 1)
