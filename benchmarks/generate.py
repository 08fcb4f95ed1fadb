"""Generation throughput: a workbench diffusion generator against its diffusers pipeline called directly, same process.

Both paths run the same loaded pipeline on the same embeddings, steps, guidance, size and batch size,
with one seeded CPU generator per image. The workbench path adds its input checks, per-row seeds,
batching and the uint8 conversion; the reference is a plain ``pipe(...)`` call per batch returning
NumPy floats. After one warm-up batch each, the two paths alternate ``--repeats`` times (swapping
which goes first) and the fastest run of each is reported as images/s, with the ratio
workbench / reference, and the peak GPU memory of each path (``torch.cuda.max_memory_allocated``;
on the CPU the process's peak resident memory instead). By default a tiny random SD 1.5-layout
pipeline with an IP-Adapter (≈1 M-parameter UNet, 8× VAE) is built in a temporary folder, so the
script runs anywhere; ``--pipeline`` points it at real local weights.

    python benchmarks/generate.py                                     # tiny pipeline, CPU, 512 px
    python benchmarks/generate.py --device cuda --dtype fp16 --pipeline ~/weights/sd15 \\
        -o ip_adapter=~/weights/ip-adapter/models/ip-adapter_sd15.safetensors -o embedding_space=ViT-H-14/laion2b_s32b_b79k
    python benchmarks/generate.py --generator kandinsky-2.2 --pipeline ~/weights/kandinsky-2-2-decoder --device cuda
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_BACKENDS = ("ip-adapter", "kandinsky-2.2", "stable-unclip")


def tiny_pipeline(root: Path) -> dict[str, Any]:
    """A tiny random SD 1.5-layout pipeline and IP-Adapter file under ``root``; returns the generator options."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "plugins"))
    import diffusion_fixtures as fixtures

    pipe = fixtures.sd_pipeline(vae_levels=4)
    fixtures.save(pipe, root / "sd")
    adapter = fixtures.save_ip_adapter(pipe.unet, root / "ip" / "ip-adapter_tiny.safetensors")
    return {"path": str(root / "sd"), "ip_adapter": str(adapter), "embedding_space": "tiny-random"}


def reference_call(gen: Any, embeds: np.ndarray, seeds: list[int]) -> np.ndarray:
    """The same batch through the diffusers pipeline object directly (float images in [0, 1])."""
    import torch

    pipe, o = gen.pipe, gen.options
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    x = torch.from_numpy(embeds).to(gen.device, gen.torch_dtype())
    common = dict(num_inference_steps=o["steps"], guidance_scale=o["guidance_scale"], generator=gens,
                  output_type="np", height=gen.size, width=gen.size)
    if gen.name == "ip-adapter":
        ip = torch.cat([torch.zeros_like(x), x])[:, None] if o["guidance_scale"] > 1 else x[:, None]
        return gen.text2img(prompt=[""] * len(seeds), ip_adapter_image_embeds=[ip], **common).images
    if gen.name == "kandinsky-2.2":
        return gen.text2img(image_embeds=x, negative_image_embeds=torch.zeros_like(x), **common).images
    return pipe(image_embeds=x, prompt=[""] * len(seeds), noise_level=o["noise_level"], **common).images


def peak_memory(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB RSS (process peak)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generator", default="ip-adapter", help="registered generator name")
    parser.add_argument("--pipeline", default=None, help="local diffusers folder (default: build a tiny random one)")
    parser.add_argument("-o", "--option", action="append", default=[], help="generator option KEY=VALUE (repeatable)")
    parser.add_argument("--n", type=int, default=8, help="images per timed run")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--guidance-scale", type=float, default=7.5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads on the CPU")
    args = parser.parse_args()

    import torch
    import yaml

    import brain_workbench
    if args.threads:
        torch.set_num_threads(args.threads)
    options: dict[str, Any] = {}
    tmp = tempfile.TemporaryDirectory()
    if args.pipeline is None:
        if args.generator != "ip-adapter":
            parser.error("the tiny default pipeline is an SD 1.5 + IP-Adapter one; pass --pipeline for other generators")
        options.update(tiny_pipeline(Path(tmp.name)))
    else:
        options["path"] = args.pipeline
    for pair in args.option:
        key, value = pair.split("=", 1)
        options[key] = yaml.safe_load(value)
    options.update(steps=args.steps, size=args.size, guidance_scale=args.guidance_scale, device=args.device,
                   dtype=args.dtype, batch_size=args.batch_size)
    gen = brain_workbench.get_registry().create("generator", args.generator, **options)
    t0 = time.perf_counter()
    gen.load()
    load_s = time.perf_counter() - t0
    embeds = np.random.default_rng(0).standard_normal((args.n, gen.embedding_dim)).astype(np.float32)
    seeds = list(range(args.n))
    has_ref = gen.name in REFERENCE_BACKENDS
    print(f"{gen.name}: {args.n} images at {gen.size} px, {args.steps} steps, batch {args.batch_size}, "
          f"{args.dtype} on {gen.device} (torch threads {torch.get_num_threads()}); pipeline loaded in {load_s:.1f} s")

    def run_workbench() -> float:
        start = time.perf_counter()
        out = gen.generate(embeds, seed=0)
        if gen.device.type == "cuda":
            torch.cuda.synchronize()
        assert out.shape == (args.n, gen.size, gen.size, 3) and out.dtype == np.uint8
        return time.perf_counter() - start

    def run_reference() -> float:
        start = time.perf_counter()
        for s in range(0, args.n, args.batch_size):
            reference_call(gen, embeds[s:s + args.batch_size], seeds[s:s + args.batch_size])
        if gen.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    warm = embeds[: args.batch_size]
    gen.generate(warm)
    if has_ref:
        reference_call(gen, warm, seeds[: len(warm)])
    times: dict[str, list[float]] = {"workbench": [], "reference": []}
    memory: dict[str, str] = {}
    for r in range(args.repeats):
        order = ["workbench", "reference"] if r % 2 == 0 else ["reference", "workbench"]
        for path in order:
            if path == "reference" and not has_ref:
                continue
            if gen.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(gen.device)
            times[path].append(run_workbench() if path == "workbench" else run_reference())
            memory[path] = peak_memory(gen.device)
    best = {k: min(v) for k, v in times.items() if v}
    for path, seconds in best.items():
        print(f"  {path:9s}: {args.n / seconds:8.3f} images/s ({seconds:.2f} s for {args.n}), peak {memory[path]}")
    if has_ref:
        print(f"  ratio workbench / reference time: {best['workbench'] / best['reference']:.3f}")
    else:
        print(f"  no direct-call reference for {gen.name} (its loop is the workbench's own)")
    tmp.cleanup()


if __name__ == "__main__":
    main()
