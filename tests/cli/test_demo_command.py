"""`workbench demo`, shrunk with --set, runs end to end as a user runs it: sweep, figures, table, follow-ups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# EfficientNet's 0.4 layer feeds the preferred and synthesis sections, MiniLM (hf-lm) the concepts embedding and the
# captions: the shrunk demo keeps every section the shipped config has.
SMALL = ["--set", "dataset.options={n_subjects: 1, n_train: 60, n_test: 20}",
         "--set", "encoders=[{name: efficientnet, layers: [0.4, 1.0]}, {name: hf-lm, layers: [1.0]}]",
         "--set", "decoding.n_way=[10]", "--set", "permutations=10",
         "--set", "reconstruction.metrics=[{name: pixcorr}]"]


@pytest.mark.slow  # the real `workbench demo` in a subprocess: model loading, a sweep and every figure (~1-2 min)
def test_demo_runs_from_any_folder_and_draws_both_directions(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WORKBENCH_SWEEP_INDEX": str(tmp_path / "index.json")}
    done = subprocess.run([sys.executable, "-m", "brain_workbench.cli", "demo", *SMALL], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "demo finished" in done.stdout and "error" not in done.stderr.lower()
    figures = tmp_path / "figures" / "demo"
    for name in ("layers.png", "decoding.png", "retrieval.png", "reconstructions.png"):
        assert (figures / name).stat().st_size > 10_000, name
    assert "top1" in done.stdout and "pixcorr" in done.stdout
    assert f"--store {tmp_path / 'stores' / 'demo.zarr'}" in done.stdout
