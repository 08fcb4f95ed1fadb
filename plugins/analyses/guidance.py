"""Brain-guided diffusion (BrainDiVE, Luo et al. 2023): DDIM sampling of a local diffusers ε-prediction pipeline in
which, at every step, the clean latent x̂₀ predicted from the noise estimate is decoded, scored by a differentiable
objective (a fitted encoding readout), and the noise estimate moved along the objective's gradient:
ε ← ε − √(1−ᾱₜ)·s·∇ₓₜ objective. Folders load by the diffusion plugin's rules: a local folder only
(``local_files_only``), checked from its JSON configs before any weight is read."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain_workbench.sdk import WorkbenchError

REQUIRED = ("unet", "vae", "scheduler")


@dataclass(frozen=True)
class GuidanceOptions:
    steps: int = 50
    scale: float = 130.0
    cfg: float = 1.0
    prompt: str = ""
    grad_through_unet: bool = False
    seed: int = 0


def check_folder(path: str | None) -> Path:
    """A local diffusers folder with a UNet, a VAE and an ε-prediction scheduler, checked from its JSON configs
    before any weight is read; one sentence for anything else."""
    if not path:
        raise WorkbenchError("brain guidance needs a local diffusers pipeline folder (path=DIR, e.g. downloaded once "
                             "with `hf download stabilityai/stable-diffusion-2-1-base --local-dir DIR`)")
    root = Path(os.path.expanduser(str(path)))
    if not (root / "model_index.json").is_file():
        what = "does not exist" if not root.exists() else "has no model_index.json"
        raise WorkbenchError(f"brain guidance: pipeline folder {root} {what}; point path= at a diffusers folder")
    missing = [c for c in REQUIRED if not (root / c).is_dir()]
    if missing:
        raise WorkbenchError(f"brain guidance: pipeline folder {root} lacks {', '.join(missing)}; it needs a UNet, "
                             "a VAE and a scheduler (a latent diffusion pipeline such as Stable Diffusion)")
    try:
        scheduler = json.loads((root / "scheduler" / "scheduler_config.json").read_text())
        unet = json.loads((root / "unet" / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise WorkbenchError(f"brain guidance: cannot read the scheduler or UNet config in {root}: {exc}") from None
    prediction = scheduler.get("prediction_type", "epsilon")
    if prediction != "epsilon":
        raise WorkbenchError(f"brain guidance: {root} is a {prediction!r}-prediction pipeline; the guidance step "
                             "ε ← ε − √(1−ᾱ)·s·∇ needs an ε-prediction pipeline (e.g. SD 1.5 or SD 2.1-base)")
    if unet.get("out_channels", unet.get("in_channels")) != unet.get("in_channels"):
        raise WorkbenchError(f"brain guidance: the UNet in {root} predicts {unet.get('out_channels')} channels for "
                             f"{unet.get('in_channels')}-channel latents (learned variance); it needs a plain "
                             "ε-prediction UNet")
    return root


def _dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype keyword: ``dtype`` from diffusers 0.36 on, else ``torch_dtype`` (the
    diffusion plugin's rule; plugins import only the SDK, so it is restated here)."""
    from importlib.metadata import version

    from packaging.version import Version

    return {"dtype" if Version(version("diffusers")) >= Version("0.36") else "torch_dtype": dtype}


class BrainGuidedSampler:
    """A local ε-prediction pipeline's UNet, VAE and DDIM scheduler (and text encoder, for the conditioning),
    sampling images that raise an objective."""

    def __init__(self, path: str, device: str = "auto", dtype: str = "fp32") -> None:
        import torch
        from diffusers import DDIMScheduler, DiffusionPipeline

        from brain_workbench.sdk.torch import resolve_device

        root = check_folder(path)
        self.device = resolve_device(device)
        if dtype == "fp16" and self.device.type == "cpu":
            raise WorkbenchError("brain guidance: dtype='fp16' needs a GPU; use 'fp32' on the CPU")
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        try:
            pipe = DiffusionPipeline.from_pretrained(root, local_files_only=True, **_dtype_kwarg(self.dtype))
        except (OSError, ValueError, RuntimeError) as exc:
            raise WorkbenchError(f"brain guidance: cannot load the pipeline from {root}: {exc}") from exc
        self.unet = pipe.unet.to(self.device).eval().requires_grad_(False)
        self.vae = pipe.vae.to(self.device).eval().requires_grad_(False)
        self.text_encoder = getattr(pipe, "text_encoder", None)
        self.tokenizer = getattr(pipe, "tokenizer", None)
        if self.text_encoder is not None:
            self.text_encoder = self.text_encoder.to(self.device).eval().requires_grad_(False)
        self.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
        self.vae_scale = float(getattr(self.vae.config, "scaling_factor", 1.0))
        self.latent_channels = int(self.unet.config.in_channels)
        self.latent_side = int(self.unet.config.sample_size)
        self.root = root

    def _context(self, prompt: str, n: int) -> Any:
        """Text conditioning of ``n`` rows (the empty prompt unconditioned), or None for an unconditional UNet."""
        import torch

        if self.text_encoder is None or self.tokenizer is None:
            if getattr(self.unet.config, "cross_attention_dim", None):
                raise WorkbenchError(f"brain guidance: the UNet in {self.root} is text-conditioned but the folder has "
                                     "no text_encoder and tokenizer")
            return None
        tokens = self.tokenizer([prompt] * n, padding="max_length", max_length=self.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt").input_ids.to(self.device)
        with torch.no_grad():
            return self.text_encoder(tokens)[0].to(self.dtype)

    def decode(self, latents: Any) -> Any:
        """Latents → images (B, 3, H, W) in [0, 1], differentiable."""
        images = self.vae.decode((latents / self.vae_scale).to(self.dtype)).sample.float()
        return ((images + 1) / 2).clamp(0, 1)

    def sample(self, objective: Callable[[Any], Any], columns: Sequence[int], options: GuidanceOptions,
               seeds: Sequence[int]) -> Any:
        """One image per seed, guided to raise ``objective(images)[i, columns[i]]`` with scale ``options.scale``
        (0: plain DDIM sampling on the same seeds); classifier-free guidance when ``options.cfg`` > 1."""
        import torch

        n = len(seeds)
        shape = (self.latent_channels, self.latent_side, self.latent_side)
        latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])
        latents = (latents * self.scheduler.init_noise_sigma).to(self.device)
        cond = self._context(options.prompt, n)
        uncond = self._context("", n) if options.cfg > 1 and cond is not None else None
        self.scheduler.set_timesteps(options.steps, device=self.device)
        alphas = self.scheduler.alphas_cumprod.to(self.device)
        rows, cols = torch.arange(n), torch.as_tensor(list(columns))

        def eps_of(x: Any, t: Any) -> Any:
            if uncond is None:
                return self.unet(x.to(self.dtype), t, encoder_hidden_states=cond).sample.float()
            both = self.unet(torch.cat([x, x]).to(self.dtype), t, encoder_hidden_states=torch.cat([uncond, cond])).sample
            e_u, e_c = both.float().chunk(2)
            return e_u + options.cfg * (e_c - e_u)

        for t in self.scheduler.timesteps:
            a = alphas[int(t)]
            with torch.set_grad_enabled(options.grad_through_unet and options.scale > 0):
                x = latents.detach().requires_grad_(options.scale > 0)
                eps = eps_of(x, t)
            if options.scale > 0:
                with torch.enable_grad():
                    if not options.grad_through_unet:
                        eps = eps.detach()
                    x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
                    score = objective(self.decode(x0))[rows, cols.to(rows.device)].sum()
                    grad = torch.autograd.grad(score, x)[0]
                eps = eps.detach() - (1 - a).sqrt() * options.scale * grad
            latents = self.scheduler.step(eps.detach(), t, latents).prev_sample
        with torch.no_grad():
            return self.decode(latents)
