"""Cost of checking every store read against its checksums, at the demo's scale and projected onto it.

Writes, in a temporary store, a feature matrix and a recording shaped like the demo's (720 stimuli ×
1280 features, the widest demo layer; 1710 trials × 20,484 fsaverage5 vertices), then times in this
process the reads a sweep makes (whole feature matrix, train and test rows, whole recording) with
and without verification, interleaved, median of ``--repeats``. The projection multiplies the
per-read overhead by the demo's read counts (2 subjects × 14 layers: 28 encoding cells reading
train and test rows, 56 metric cells reading test rows, 2 recording loads per process) and divides
by the demo's wall time.

    python benchmarks/store_read.py
    python benchmarks/store_read.py --stimuli 10000 --width 768 --trials 30000 --units 15724   # NSD-like
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.features import load_features
from workbench.store import ArraySpec, Store, load_recording, save_recording
from workbench.types import Recording, Units


def build(store: Store, args: argparse.Namespace) -> tuple[str, str, list[str], list[str]]:
    rng = np.random.default_rng(0)
    ids = [f"stim-{i:05d}" for i in range(args.stimuli)]
    X = rng.standard_normal((args.stimuli, args.width)).astype(np.float32)
    feature = "features/bench-0/layer"
    specs = {"data": ArraySpec(X.shape, "float32"), "stimulus_ids": ArraySpec((len(ids),), "str", blocked=False)}
    with store.writer(feature, specs, kind="features") as w:
        for b in w.pending_blocks():
            w.write_block(b, {"data": X[w.block_slice(b)]})
        w.put("stimulus_ids", np.array(ids))
        w.finish()
    trial_ids = np.array([ids[i % args.stimuli] for i in range(args.trials)])
    units = Units(space="fsaverage5", n=args.units, rois={f"roi{k}": rng.random(args.units) < 0.1 for k in range(8)},
                  hemisphere=np.where(np.arange(args.units) < args.units // 2, "L", "R"), vertex=np.arange(args.units))
    rec = Recording(dataset="bench", subject="1", responses=rng.standard_normal((args.trials, args.units)).astype(np.float32),
                    trial_stimulus_ids=trial_ids, units=units, splits={"test": np.array(ids[:args.test])},
                    noise_ceiling=rng.random(args.units).astype(np.float32))
    recording = "responses/bench/1-0"
    save_recording(store, recording, rec)
    return feature, recording, ids[args.test:], ids[:args.test]


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median seconds of ``fn(False)`` and ``fn(True)``, interleaved so drift hits both alike."""
    off, on = [], []
    for _ in range(repeats):
        for verify, out in ((False, off), (True, on)):
            t0 = time.perf_counter()
            fn(verify)
            out.append(time.perf_counter() - t0)
    return statistics.median(off), statistics.median(on)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stimuli", type=int, default=720)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--trials", type=int, default=1710)
    ap.add_argument("--units", type=int, default=20484)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--demo-seconds", type=float, default=130.0, help="wall time of `workbench demo` to project onto")
    ap.add_argument("--encoding-cells", type=int, default=28)
    ap.add_argument("--metric-cells", type=int, default=56)
    ap.add_argument("--recording-loads", type=int, default=2)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.zarr")
        feature, recording, train, test = build(store, args)
        cases = {
            "features, whole matrix": lambda v: load_features(store, feature, verify=v),
            "features, train rows": lambda v: load_features(store, feature, train, verify=v),
            "features, test rows": lambda v: load_features(store, feature, test, verify=v),
            "recording, whole": lambda v: load_recording(store, recording, verify=v),
        }
        for fn in cases.values():  # warm the page cache and imports
            fn(True)
        results = {name: timed(fn, args.repeats) for name, fn in cases.items()}

    blob = np.random.default_rng(1).standard_normal(2**24 // 4).astype(np.float32).tobytes()
    t0 = time.perf_counter()
    hashlib.blake2b(blob, digest_size=16)
    hash_rate = len(blob) / (time.perf_counter() - t0) / 2**20

    print(f"store read verification ({args.repeats} repeats, median; blake2b {hash_rate:.0f} MiB/s on this machine)")
    print(f"{'read':<26}{'unchecked ms':>14}{'checked ms':>12}{'ratio':>8}{'overhead ms':>13}")
    for name, (off, on) in results.items():
        print(f"{name:<26}{off * 1e3:>14.1f}{on * 1e3:>12.1f}{on / off:>8.2f}{(on - off) * 1e3:>13.1f}")
    extra = {name: on - off for name, (off, on) in results.items()}
    projected = (args.encoding_cells * (extra["features, train rows"] + extra["features, test rows"])
                 + args.metric_cells * extra["features, test rows"]
                 + args.recording_loads * extra["recording, whole"])
    print(f"demo projection: {args.encoding_cells} encoding cells × (train + test rows) + {args.metric_cells} metric "
          f"cells × test rows + {args.recording_loads} recording loads = {projected:.2f} s extra, "
          f"{100 * projected / args.demo_seconds:.2f}% of {args.demo_seconds:.0f} s (goal ≤ 5%)")


if __name__ == "__main__":
    main()
