"""Synthesis throughput: the workbench's two generators against bare torch loops doing the same maths, same process.

Both generators ascend one objective: EfficientNet-Lite0 (the shipped weights) features of a layer through a
random linear readout of ``--targets`` targets. The workbench paths are the synthesis analysis's own functions
(``ascent.latent_ascent`` through the TAEF2 decoder with the encoder's differentiable path and
``ReadoutObjective``; ``guidance.BrainGuidedSampler.sample``); the bare loops are written here with plain torch on
the same modules (the TAEF2 decoder, the EfficientNet model, the pipeline's UNet, VAE and DDIM scheduler): the
same resize, normalisation, augmentations, Adam and guidance step, without the workbench's checks, hooks and
wrappers. After one warm-up, the paths alternate ``--repeats`` times; the fastest run of each is reported as
images/s with the ratio workbench / bare. By default a tiny random SD-layout pipeline (tests/plugins/
diffusion_fixtures) is built in a temporary folder; ``--pipeline`` points at real ε-prediction weights.

    python benchmarks/synthesis.py                                      # CPU, tiny pipeline
    python benchmarks/synthesis.py --device cuda --pipeline ~/weights/sd21-base --dtype fp16 --steps 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

import brain_workbench as wb
from brain_workbench_plugins.analyses.ascent import AscentOptions, augment, latent_ascent, start_latents
from brain_workbench_plugins.analyses.guidance import BrainGuidedSampler, GuidanceOptions
from brain_workbench_plugins.analyses.objective import ReadoutObjective


def tiny_pipeline(root: Path) -> str:
    """A tiny random SD-layout pipeline (text-conditioned UNet, 2× VAE) saved as real weights ship."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "plugins"))
    import diffusion_fixtures as fixtures

    return str(fixtures.save(fixtures.sd_pipeline(), root / "sd"))


def bare_features(model: Any, images: torch.Tensor, size: int) -> torch.Tensor:
    """EfficientNet's pooled features written out: resize + centre crop + (x − 0.498) / 0.502, forward, mean."""
    resize = size + 32
    x = F.interpolate(images, size=(resize, resize), mode="bicubic", align_corners=False, antialias=True)
    start = (resize - size) // 2
    x = (x[..., start:start + size, start:start + size] - 127 / 255) / (128 / 255)
    return model.extract_features(x).mean(dim=(2, 3))


def bare_ascent(decoder: Any, model: Any, size: int, W: torch.Tensor, b: torch.Tensor, columns: torch.Tensor,
                latents: torch.Tensor, opts: AscentOptions) -> torch.Tensor:
    z = latents.clone().requires_grad_(True)
    adam = torch.optim.Adam([z], lr=opts.lr)
    generator = torch.Generator().manual_seed(opts.seed + 1)
    rows = torch.arange(len(columns))
    for _ in range(opts.steps):
        adam.zero_grad(set_to_none=True)
        images = decoder(z).clamp(0, 1)
        tv = ((images[..., :, 1:] - images[..., :, :-1]) ** 2).flatten(1).mean(1) + \
            ((images[..., 1:, :] - images[..., :-1, :]) ** 2).flatten(1).mean(1)
        scores = bare_features(model, augment(images, opts.jitter, opts.scale, generator), size) @ W + b
        (opts.tv * tv.sum() - scores[rows, columns].sum()).backward()
        adam.step()
    with torch.no_grad():
        return decoder(z).clamp(0, 1)


def bare_guided(sampler: BrainGuidedSampler, model: Any, size: int, W: torch.Tensor, b: torch.Tensor,
                columns: torch.Tensor, seeds: list[int], opts: GuidanceOptions) -> torch.Tensor:
    unet, vae, scheduler = sampler.unet, sampler.vae, sampler.scheduler
    shape = (sampler.latent_channels, sampler.latent_side, sampler.latent_side)
    x = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s)) for s in seeds]).to(sampler.device)
    x = x * scheduler.init_noise_sigma
    cond = sampler._context(opts.prompt, len(seeds))
    scheduler.set_timesteps(opts.steps, device=sampler.device)
    alphas = scheduler.alphas_cumprod.to(sampler.device)
    rows = torch.arange(len(seeds))
    for t in scheduler.timesteps:
        a = alphas[int(t)]
        with torch.no_grad():
            eps = unet(x.to(sampler.dtype), t, encoder_hidden_states=cond).sample.float()
        xg = x.detach().requires_grad_(True)
        x0 = (xg - (1 - a).sqrt() * eps) / a.sqrt()
        images = ((vae.decode((x0 / sampler.vae_scale).to(sampler.dtype)).sample.float() + 1) / 2).clamp(0, 1)
        score = (bare_features(model, images, size) @ W + b)[rows, columns].sum()
        eps = eps - (1 - a).sqrt() * opts.scale * torch.autograd.grad(score, xg)[0]
        x = scheduler.step(eps, t, x).prev_sample
    with torch.no_grad():
        return ((vae.decode((x / sampler.vae_scale).to(sampler.dtype)).sample.float() + 1) / 2).clamp(0, 1)


def best_of(repeats: int, paths: dict[str, Any]) -> dict[str, float]:
    best = {name: float("inf") for name in paths}
    for r in range(repeats):
        for name in (list(paths) if r % 2 == 0 else list(paths)[::-1]):
            started = time.perf_counter()
            paths[name]()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--pipeline", default=None, help="local ε-prediction diffusers folder (default: tiny random)")
    parser.add_argument("--targets", type=int, default=2)
    parser.add_argument("--images", type=int, default=2, help="images per target")
    parser.add_argument("--ascent-steps", type=int, default=10)
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps")
    parser.add_argument("--size", type=int, default=64, help="TAEF2 image side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = wb.encoder("efficientnet", device=args.device)
    encoder.ensure_loaded()
    model, crop = encoder.model, encoder.image_size
    width = int(model._fc.in_features)
    W = torch.randn(width, args.targets, device=encoder.device) / width ** 0.5
    b = torch.zeros(args.targets, device=encoder.device)
    objective = ReadoutObjective(encoder.differentiable("pooled"), W.cpu().numpy(), b.cpu().numpy(),
                                 [f"t{i}" for i in range(args.targets)])
    columns = torch.arange(args.targets).repeat_interleave(args.images)
    n = len(columns)
    codec = wb.get_registry().create("codec", "taef2", image_size=args.size, device=args.device)
    decoder = codec.decoder()
    opts = AscentOptions(steps=args.ascent_steps)
    starts = start_latents(n, codec.latent_shape, opts.init_sd, opts.seed).to(next(decoder.parameters()).device)
    results = {}
    taef2 = {"taef2 workbench": lambda: latent_ascent(decoder, objective, columns, starts, opts),
             "taef2 bare": lambda: bare_ascent(decoder, model, crop, W, b, columns.to(W.device), starts, opts)}
    same = {"taef2": float((taef2["taef2 workbench"]() - taef2["taef2 bare"]()).abs().max())}
    results.update(best_of(args.repeats, taef2))
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.pipeline or tiny_pipeline(Path(tmp))
        sampler = BrainGuidedSampler(folder, device=args.device, dtype=args.dtype)
        seeds = list(range(n))
        guidance = GuidanceOptions(steps=args.steps, scale=130.0)
        diffusion = {"diffusion workbench": lambda: sampler.sample(objective, columns.tolist(), guidance, seeds),
                     "diffusion bare": lambda: bare_guided(sampler, model, crop, W, b, columns.to(W.device), seeds,
                                                           guidance)}
        same["diffusion"] = float((diffusion["diffusion workbench"]() - diffusion["diffusion bare"]()).abs().max())
        results.update(best_of(args.repeats, diffusion))
    print(f"{n} images ({args.targets} targets × {args.images}), device {args.device}, dtype {args.dtype}; "
          f"TAEF2 {args.size}px × {args.ascent_steps} Adam steps; DDIM {args.steps} steps on "
          f"{args.pipeline or 'a tiny random SD-layout pipeline'}; best of {args.repeats}")
    for generator in ("taef2", "diffusion"):
        wb_s, bare_s = results[f"{generator} workbench"], results[f"{generator} bare"]
        print(f"{generator:10s} workbench {n / wb_s:8.3f} images/s   bare {n / bare_s:8.3f} images/s   "
              f"ratio {bare_s / wb_s:.3f}   max |workbench − bare| pixel {same[generator]:.2e}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
