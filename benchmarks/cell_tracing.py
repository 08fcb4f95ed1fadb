"""Cost of measuring each cell's own peak memory (tracemalloc in the worker), same process.

Runs a small demo sweep once to fill a temporary store, then times the encoding cells' computation
with ``compute_cell`` (peak memory measured) and ``compute_encoding_cell`` (not measured) alternately, ``--repeats``
times each, and prints the fastest totals and their ratio.

    python benchmarks/cell_tracing.py --n-train 400 --n-test 100 --repeats 5
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

import brain_workbench as wb
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.compute import CellComputer
from brain_workbench.sweep.config import config_from_dict


class ThumbnailEncoder:
    """8×8 RGB thumbnails (192 features): cheap, so the cells' own work dominates."""

    name = "thumbnail-bench"
    modality = "image"

    def layers(self):
        return [wb.sdk.LayerInfo("thumbnail", 1.0)]

    def encode(self, batch, layers):
        return {"thumbnail": np.stack([np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32).ravel() / 255
                                       for im in batch])}

    def fingerprint(self) -> str:
        return "thumbnail-bench-1"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-test", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    wb.register("thumbnail-bench", ThumbnailEncoder, kind="encoder", replace=True)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config_from_dict({
            "name": "bench", "store": f"{tmp}/store.zarr", "subjects": ["1"],
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": args.n_train, "n_test": args.n_test}},
            "encoders": [{"name": "thumbnail-bench", "batch_size": 64}],
            "permutations": 50})
        sweep = Sweep(cfg)
        sweep.run()
        cells = [c for c in sweep.plan().cells if c.kind == "encoding"]
        encoding = sweep.analyses()["encoding"]
        compute_cell, compute_encoding_cell = CellComputer({"encoding": encoding}), encoding.compute
        best = {"traced": float("inf"), "untraced": float("inf")}
        for r in range(args.repeats):
            order = [("traced", compute_cell), ("untraced", compute_encoding_cell)]
            for name, fn in order if r % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                for cell in cells:
                    fn(sweep.store.url, cell)
                best[name] = min(best[name], time.perf_counter() - started)
        print(f"{len(cells)} encoding cells, {args.n_train}+{args.n_test} stimuli, fastest of {args.repeats}")
        print(f"traced   {best['traced']:.3f} s\nuntraced {best['untraced']:.3f} s\n"
              f"ratio traced/untraced {best['traced'] / best['untraced']:.3f}")


if __name__ == "__main__":
    main()
