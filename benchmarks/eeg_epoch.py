"""One training epoch of the contrastive EEG heads at THINGS-EEG2 size, on CPU or a GPU.

Full size is NICE's training set: 16,540 repetition-averaged training images × 17 channels × 100 samples (the
official preprocessed release) and × 63 channels × 250 samples (NICE/ATM's own preprocessing), against 768-wide
CLIP ViT-L/14 embeddings, batch 1000 (NICE), Adam at 2e-4. Each (arch, layout) pair times the forward, symmetric
InfoNCE, backward and optimiser step over every full batch of one epoch (after one warm-up batch; CUDA is
synchronised before the clock stops), and reports seconds per epoch, trials per second and peak memory.

    python benchmarks/eeg_epoch.py --trials 2000                  # a busy 2-core machine
    python benchmarks/eeg_epoch.py                                # full size on CPU
    python benchmarks/eeg_epoch.py --device cuda --json out.json  # on a GPU
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np
import torch

from brain_workbench_plugins.eeg_zeroshot.head import LAYOUT_SHAPES
from brain_workbench_plugins.eeg_zeroshot.models import ARCHS, EEGEncoder, info_nce


def one_epoch(arch: str, layout: str, trials: int, batch: int, width: int, device: str, threads: int | None,
              seed: int = 0) -> dict:
    """Time one epoch of ``arch`` on random trials of ``layout`` (seeded), batches of ``batch``."""
    channels, times = LAYOUT_SHAPES[layout]
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X = torch.from_numpy(rng.standard_normal((trials, channels, times), dtype=np.float32)).to(device)
    Y = torch.from_numpy(rng.standard_normal((trials, 768), dtype=np.float32)).to(device)
    model = EEGEncoder(arch, channels, times, 768, width=width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    bs = min(batch, trials)

    def step(idx: torch.Tensor) -> float:
        loss = info_nce(model(X[idx]), Y[idx], model.logit_scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    def sync() -> None:
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    order = torch.randperm(trials, device=device)
    step(order[:bs])
    sync()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    n_batches = 0
    for start in range(0, trials - bs + 1, bs):
        loss = step(order[start:start + bs])
        n_batches += 1
    sync()
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() / 2 ** 20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"arch": arch, "layout": layout, "trials": trials, "batch": bs, "batches": n_batches, "device": device,
            "threads": torch.get_num_threads(), "seconds_per_epoch": round(seconds, 3),
            "trials_per_s": round(n_batches * bs / seconds, 1), "peak_mib": round(peak, 1),
            "parameters": sum(p.numel() for p in model.parameters()), "last_loss": round(loss, 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=16_540, help="training trials (THINGS-EEG2: 16,540 images)")
    parser.add_argument("--batch", type=int, default=1000, help="batch size (NICE: 1000)")
    parser.add_argument("--width", type=int, default=40, help="convolution filters (NICE: 40)")
    parser.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: tsconv, atms")
    parser.add_argument("--layouts", default="17x100,63x250", help="comma-separated: 17x100, 63x250")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available on this machine")
    unknown = [x for x in args.layouts.split(",") if x not in LAYOUT_SHAPES] + \
        [a for a in args.archs.split(",") if a not in ARCHS]
    if unknown:
        parser.error(f"unknown layout or arch {unknown[0]!r}; layouts: {', '.join(LAYOUT_SHAPES)}; archs: "
                     f"{', '.join(ARCHS)}")
    if args.trials < 2 or args.batch < 2:
        parser.error("--trials and --batch must be at least 2")
    results = []
    for layout in args.layouts.split(","):
        for arch in args.archs.split(","):
            row = one_epoch(arch, layout, args.trials, args.batch, args.width, args.device, args.threads)
            results.append(row)
            print(f"{arch:7s} {layout:7s} {row['trials']:6d} trials  {row['seconds_per_epoch']:8.2f} s/epoch  "
                  f"{row['trials_per_s']:9.1f} trials/s  peak {row['peak_mib']:8.1f} MiB  "
                  f"({row['parameters']:,} parameters, {row['threads']} threads, {row['device']})", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
