"""Cost of checking every store read against its checksums, measured at the demo's scale and projected onto it.

Times, in this process, the reads a sweep makes with and without verification (interleaved, median
of ``--repeats``): each feature matrix whole, its test rows, and each recording whole. By default
the data are synthetic and shaped like the demo's (14 layers of 720 stimuli × ``--width`` features,
2 recordings of 1710 trials × 20,484 fsaverage5 vertices); ``--store`` times the entries of a real
store instead (e.g. the one ``workbench demo`` filled). The projection adds the overhead of the
demo's reads: per subject and feature matrix, one encoding cell (train rows + test rows, about one
whole matrix plus its test rows) and ``--metrics`` metric cells (test rows each), plus
``--recording-loads`` recording loads (one per subject for the cells, and one per brain-map figure:
the demo draws 6); it is printed as a share of ``--demo-seconds``.

    python benchmarks/store_read.py
    python benchmarks/store_read.py --store stores/demo.zarr --demo-seconds 130
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from brain_workbench.store import ArraySpec, Store, load_recording, save_recording
from brain_workbench.store.features import load_features
from brain_workbench.types import Recording, Units


def synthetic(store: Store, args: argparse.Namespace) -> None:
    """Demo-shaped feature matrices and recordings in ``store``."""
    rng = np.random.default_rng(0)
    ids = [f"stim-{i:05d}" for i in range(args.stimuli)]
    for layer in range(args.layers):
        X = rng.standard_normal((args.stimuli, args.width)).astype(np.float32)
        specs = {"data": ArraySpec(X.shape, "float32"), "stimulus_ids": ArraySpec((len(ids),), "str", blocked=False)}
        with store.writer(f"features/bench-0/layer{layer}", specs, kind="features") as w:
            for b in w.pending_blocks():
                w.write_block(b, {"data": X[w.block_slice(b)]})
            w.put("stimulus_ids", np.array(ids))
            w.finish()
    for subject in range(args.subjects):
        units = Units(space="fsaverage5", n=args.units, vertex=np.arange(args.units),
                      rois={f"roi{k}": rng.random(args.units) < 0.1 for k in range(8)},
                      hemisphere=np.where(np.arange(args.units) < args.units // 2, "left", "right"))
        rec = Recording(dataset="bench", subject=str(subject), trial_stimulus_ids=np.resize(np.array(ids), args.trials),
                        responses=rng.standard_normal((args.trials, args.units)).astype(np.float32), units=units,
                        splits={"test": np.array(ids[:args.test])},
                        noise_ceiling=rng.random(args.units).astype(np.float32))
        save_recording(store, f"responses/bench/{subject}-0", rec)


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn(False)`` and ``fn(True)``, interleaved so drift hits both alike."""
    fn(True)  # warm the page cache
    off, on = [], []
    for _ in range(repeats):
        for verify, out in ((False, off), (True, on)):
            t0 = time.perf_counter()
            fn(verify)
            out.append(time.perf_counter() - t0)
    return statistics.median(off), statistics.median(on)


def measure(store: Store, args: argparse.Namespace) -> None:
    recordings = [e.path for e in store.ls("responses", damaged=False) if e.complete]
    features = [e.path for e in store.ls("features", damaged=False) if e.complete and e.kind == "features"]
    if not recordings or not features:
        raise SystemExit(f"{store.url} holds no complete recordings or feature matrices to time")
    test = sorted(set(store.open(recordings[0])["split_test"].tolist()))
    rows: list[tuple[str, str, float, float]] = []
    for path in features:
        ids = set(store.open(path)["stimulus_ids"].tolist())
        test_ids = [s for s in test if s in ids]
        rows.append(("whole", path, *timed(lambda v, p=path: load_features(store, p, verify=v), args.repeats)))
        rows.append(("test", path, *timed(lambda v, p=path, t=test_ids: load_features(store, p, t, verify=v),
                                          args.repeats)))
    for path in recordings:
        rows.append(("recording", path, *timed(lambda v, p=path: load_recording(store, p, verify=v), args.repeats)))

    blob = np.random.default_rng(1).standard_normal(2**24 // 4).astype(np.float32).tobytes()
    t0 = time.perf_counter()
    hashlib.blake2b(blob, digest_size=16)
    rate = len(blob) / (time.perf_counter() - t0) / 2**20
    print(f"store {store.url}: {len(features)} feature matrices, {len(recordings)} recordings; "
          f"median of {args.repeats}; blake2b {rate:.0f} MiB/s here")
    print(f"{'read':<10}{'entries':>8}{'unchecked s':>13}{'checked s':>11}{'ratio':>7}{'overhead s':>12}")
    totals: dict[str, tuple[float, float]] = {}
    for kind in ("whole", "test", "recording"):
        off = sum(r[2] for r in rows if r[0] == kind)
        on = sum(r[3] for r in rows if r[0] == kind)
        totals[kind] = (off, on)
        print(f"{kind:<10}{sum(r[0] == kind for r in rows):>8}{off:>13.3f}{on:>11.3f}{on / off:>7.2f}{on - off:>12.3f}")
    extra = {k: on - off for k, (off, on) in totals.items()}
    per_subject = extra["whole"] + (1 + args.metrics) * extra["test"]
    per_load = extra["recording"] / len(recordings)
    projected = args.subjects * per_subject + args.recording_loads * per_load
    print(f"demo projection: {args.subjects} subjects × (whole + {1 + args.metrics} × test rows of every matrix) + "
          f"{args.recording_loads} recording loads × {per_load:.3f} s = {projected:.2f} s extra, "
          f"{100 * projected / args.demo_seconds:.2f}% of {args.demo_seconds:.0f} s (goal ≤ 5%)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None, help="time the entries of this store instead of synthetic data")
    ap.add_argument("--layers", type=int, default=14)
    ap.add_argument("--stimuli", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280, help="features per layer (the widest demo layer)")
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--trials", type=int, default=1710)
    ap.add_argument("--units", type=int, default=20484)
    ap.add_argument("--metrics", type=int, default=2, help="metric cells per subject and layer")
    ap.add_argument("--recording-loads", type=int, default=8, help="2 for the cells + 6 brain-map figures")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--demo-seconds", type=float, default=130.0, help="wall time of `workbench demo` to project onto")
    args = ap.parse_args()
    if args.store:
        measure(Store(args.store, mode="r"), args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.zarr")
        synthetic(store, args)
        measure(store, args)


if __name__ == "__main__":
    main()
