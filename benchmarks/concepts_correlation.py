"""Chunked latent × unit correlation at scale: 16,384 SAE latents × 20,000 units, the per-unit best latent and
per-latent peak |r| in one pass, without the dense latents × units matrix.

Peak memory is traced with tracemalloc (numpy reports its buffers to it) from after the data exist, so it counts
what the pass itself allocates: the standardised units once and one chunk of latents × units at a time. It is
printed against the dense float32 matrix the pass never builds, and a spot check compares a few units' best
latents with a direct numpy correlation of those units.

    python benchmarks/concepts_correlation.py                  # 16,384 × 20,000 over 500 stimuli
    python benchmarks/concepts_correlation.py --stimuli 200 --chunk 512
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from brain_workbench_plugins.analyses.concepts.correlation import latent_summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latents", type=int, default=16_384)
    parser.add_argument("--units", type=int, default=20_000)
    parser.add_argument("--stimuli", type=int, default=500)
    parser.add_argument("--chunk", type=int, default=1024)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    latents = np.maximum(rng.standard_normal((args.stimuli, args.latents), dtype=np.float32) - 1.5, 0)
    units = rng.standard_normal((args.stimuli, args.units), dtype=np.float32)
    units[:, :100] += latents[:, :100] * 2
    data_mb = (latents.nbytes + units.nbytes) / 2**20
    tracemalloc.start()
    started = time.time()
    best, best_r, peak, _ = latent_summaries(latents, units, args.chunk)
    seconds = time.time() - started
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    dense_mb = args.latents * args.units * 4 / 2**20
    chunk_mb = args.chunk * args.units * 4 / 2**20
    print(f"{args.latents} latents × {args.units} units over {args.stimuli} stimuli, chunk {args.chunk}: "
          f"{seconds:.1f} s")
    print(f"peak memory of the pass: {traced / 2**20:.0f} MiB (inputs {data_mb:.0f} MiB not counted); "
          f"one chunk of r: {chunk_mb:.0f} MiB; a dense float32 latents × units matrix: {dense_mb:.0f} MiB")
    check = np.arange(0, args.units, max(1, args.units // 7))[:7]
    z = (latents - latents.mean(0)) / np.where(latents.std(0) > 0, latents.std(0), 1)
    y = (units[:, check] - units[:, check].mean(0)) / units[:, check].std(0)
    r = (z.T.astype(np.float64) @ y) / args.stimuli
    r[latents.std(0) == 0] = -np.inf
    assert (r.argmax(0) == best[check]).all() and np.allclose(r.max(0), best_r[check], atol=1e-4)
    print(f"spot check: best latents of units {check.tolist()} equal a direct numpy computation; planted units "
          f"0–99 found their own latent: {(best[:100] == np.arange(100)).mean():.0%}")


if __name__ == "__main__":
    main()
