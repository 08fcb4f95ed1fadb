"""Extraction overhead: brain_workbench.store.features.extract_features against a bare PyTorch loop, same process.

Both paths run the same random-weight open_clip model with the same preprocessing, batch size and
forward hooks on the same three layers, over the same procedurally generated images held in
memory. The workbench path also loads stimuli through a StimulusSet, checks every feature for NaN
and writes checksummed zarr blocks into a temporary store. Model building (and the one-off weights
digest) is timed separately and excluded from both loops. To keep background load from favouring
one side on a shared machine, the images are split into ``--chunks`` parts and the two paths
alternate part by part, swapping which goes first every part; each path's time is the sum over
parts (with ``--repeats``, the fastest total of each). The median over parts of the paired ratio
workbench / bare is printed too, and so is the process CPU time of each path, the figure least
moved by other processes (with several torch threads, spin-waiting counts as CPU time too).

    python benchmarks/extract.py                        # 512 images, ViT-B-32, CPU
    python benchmarks/extract.py --device cuda --precision fp16 --n 4096 --batch-size 256
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def make_images(n: int, seed: int = 0) -> list:
    """Varied synthetic RGB images (gradients, stripes, disks, noise) of a few sizes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = (256, 320) if i % 3 else (300, 240)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        freq = rng.uniform(0.02, 0.2)
        angle = rng.uniform(0, np.pi)
        stripes = np.sin(freq * (xx * np.cos(angle) + yy * np.sin(angle)))
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(20, 90)
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2).astype(np.float32)
        colour = rng.uniform(0, 1, size=3)
        rgb = 0.5 + 0.3 * stripes[..., None] * colour + 0.4 * disk[..., None] * (1 - colour)
        rgb += rng.normal(0, 0.05, size=rgb.shape)
        images.append(Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)))
    return images


def bare_loop(encoder, images: list, layers: list[str], batch_size: int) -> dict[str, np.ndarray]:
    """The reference: preprocess, forward with hooks on the same blocks, pool, copy to NumPy."""
    import torch

    from brain_workbench.numerics.nn import autocast

    visual, device = encoder.module, encoder.device
    blocks = {name: encoder.blocks[int(name[5:])] for name in layers if name != "embedding"}
    captured: dict[str, torch.Tensor] = {}
    hooks = [module.register_forward_hook(lambda _m, _i, out, _n=name: captured.__setitem__(_n, out))
             for name, module in blocks.items()]
    out: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            x = torch.stack([encoder.preprocess(im.convert("RGB")) for im in batch]).to(device)
            with torch.inference_mode(), autocast(device, encoder.precision):
                embedding = visual(x)
            for name in blocks:
                out[name].append(captured[name][:, 0].float().cpu().numpy())
            if "embedding" in out:
                out["embedding"].append(embedding.float().cpu().numpy())
    finally:
        for hook in hooks:
            hook.remove()
    return {name: np.concatenate(parts) for name, parts in out.items()}


def workbench_run(encoder, images: list, layers: list[str], batch_size: int, root: Path) -> dict[str, np.ndarray]:
    from brain_workbench.store import Store
    from brain_workbench.store.features import extract_features, load_features
    from brain_workbench.types import StimulusSet

    ids = tuple(f"img{id(images)}-{i:05d}" for i in range(len(images)))
    position = {s: i for i, s in enumerate(ids)}
    stimuli = StimulusSet(ids, "image", lambda wanted: [images[position[s]] for s in wanted])
    store = Store(root / f"run-{time.monotonic_ns()}.zarr")
    paths = extract_features(store, encoder, stimuli, layers=layers, batch_size=batch_size)
    return {name: load_features(store, path) for name, path in paths.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="number of images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each path")
    parser.add_argument("--chunks", type=int, default=8, help="parts the two paths alternate on")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads [default: torch's choice]")
    args = parser.parse_args()

    import torch

    import brain_workbench as wb

    if args.threads:
        torch.set_num_threads(args.threads)
    images = make_images(args.n)
    t0 = time.perf_counter()
    encoder = wb.encoder("clip", model=args.model, device=args.device, precision=args.precision)
    encoder.fingerprint()
    load_s = time.perf_counter() - t0
    from brain_workbench.types import resolve_layers

    layers = resolve_layers(encoder.layers(), [0.25, 0.5, 1.0])
    print(f"model {args.model} (random weights) on {encoder.device}, precision {args.precision}, "
          f"torch threads {torch.get_num_threads()}; layers {', '.join(layers)}")
    print(f"images {args.n} in {args.chunks} alternating parts, batch size {args.batch_size}; "
          f"model build + weights digest {load_s:.1f} s (excluded)")

    times: dict[str, list[float]] = {"bare": [], "workbench": []}
    cpu = {"bare": 0.0, "workbench": 0.0}
    ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(encoder, images[: args.batch_size], layers, args.batch_size)
        workbench_run(encoder, images[: args.batch_size], layers, args.batch_size, Path(tmp))
        size = -(-args.n // args.chunks)
        parts = [images[i:i + size] for i in range(0, args.n, size)]
        for _ in range(args.repeats):
            total = {"bare": 0.0, "workbench": 0.0}
            refs, gots = [], []
            for i, part in enumerate(parts):
                pair = {}
                for path in (("bare", "workbench") if i % 2 == 0 else ("workbench", "bare")):
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if path == "bare":
                        ref_part = bare_loop(encoder, part, layers, args.batch_size)
                    else:
                        got_part = workbench_run(encoder, part, layers, args.batch_size, Path(tmp))
                    pair[path] = time.perf_counter() - start
                    cpu[path] += time.process_time() - cpu_start
                    total[path] += pair[path]
                refs.append(ref_part)
                gots.append(got_part)
                ratios.append(pair["workbench"] / pair["bare"])
            for key, value in total.items():
                times[key].append(value)
            ref = {name: np.concatenate([r[name] for r in refs]) for name in layers}
            got = {name: np.concatenate([g[name] for g in gots]) for name in layers}
    tol = 1e-4 if args.precision == "fp32" else 5e-2
    for name in layers:
        np.testing.assert_allclose(got[name], ref[name], rtol=tol, atol=tol, err_msg=f"layer {name} differs")

    best = {k: min(v) for k, v in times.items()}
    for k, v in times.items():
        runs = ", ".join(f"{t:.2f}" for t in v)
        print(f"{k:>10}: {args.n / best[k]:7.2f} images/s  (best of {len(v)}: {best[k]:.2f} s; runs {runs} s; "
              f"median {statistics.median(v):.2f} s)")
    overhead = 100.0 * (best["workbench"] - best["bare"]) / best["bare"]
    paired = 100.0 * (statistics.median(ratios) - 1.0)
    cpu_overhead = 100.0 * (cpu["workbench"] - cpu["bare"]) / cpu["bare"]
    print(f"  cpu time: bare {cpu['bare']:.1f} s, workbench {cpu['workbench']:.1f} s")
    print(f"  overhead: {overhead:+.1f}% wall (best totals), {paired:+.1f}% wall (median of {len(ratios)} paired "
          f"parts), {cpu_overhead:+.1f}% cpu time; features identical within {tol:g}")


if __name__ == "__main__":
    main()
