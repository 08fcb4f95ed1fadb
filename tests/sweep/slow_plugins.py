"""Plugins for sweeps run in real subprocesses: every fit is logged, and fits can be slowed down.

Run as a script: ``python slow_plugins.py ARGS...`` registers the plugins and runs ``workbench ARGS``;
``$FIT_LOG`` receives one line per fit (the fitting pid), ``$FIT_SLEEP`` seconds are slept per fit,
and ``$TABLE_OUT`` receives the sweep's results table as JSON once the command has succeeded.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import brain_workbench as wb
from brain_workbench.types import LayerInfo, digest


class PixelEncoder:
    """Colour statistics and an 8 × 8 thumbnail of each image: fast and deterministic."""

    name = "slow-pixel"
    modality = "image"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("colour", 0.0), LayerInfo("thumbnail", 1.0)]

    def encode(self, batch, layers):
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        out = {"colour": np.stack([np.r_[a.mean((0, 1)), a.std((0, 1))] for a in arrays]),
               "thumbnail": np.stack([a.ravel() for a in arrays])}
        return {layer: out[layer] for layer in layers}

    def fingerprint(self) -> str:
        return digest("slow-pixel", 1)


class LoggedRidge:
    """Closed-form ridge that logs each fit to ``$FIT_LOG`` and sleeps ``$FIT_SLEEP`` seconds first."""

    direction = "encode"

    def __init__(self, alpha: float = 10.0) -> None:
        self.alpha = alpha

    def get_params(self, deep=True):
        return {"alpha": self.alpha}

    def fit(self, X, Y):
        time.sleep(float(os.environ.get("FIT_SLEEP", "0")))
        if os.environ.get("FIT_LOG"):
            fd = os.open(os.environ["FIT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, f"{os.getpid()}\n".encode())
            os.close(fd)
        self.coef_ = np.linalg.solve(X.T @ X + self.alpha * np.eye(X.shape[1]), X.T @ (Y - Y.mean(0)))
        self.intercept_ = Y.mean(0) - X.mean(0) @ self.coef_
        return self

    def predict(self, X):
        return X @ self.coef_ + self.intercept_

    def score_per_unit(self, X, Y):
        from brain_workbench.numerics.scoring import pearson_per_unit

        return pearson_per_unit(Y, self.predict(X))

    def score(self, X, Y):
        return float(self.score_per_unit(X, Y).mean())


def register() -> None:
    wb.register("slow-pixel", PixelEncoder, kind="encoder", replace=True)
    wb.register("logged-ridge", LoggedRidge, kind="head", replace=True)


def config(store: str, name: str = "race") -> dict:
    """Three subjects × two layers × two heads: twelve cells."""
    return {"name": name, "store": store,
            "dataset": {"name": "demo", "options": {"n_subjects": 3, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": "slow-pixel", "layers": [0.0, 1.0], "batch_size": 16}],
            "heads": [{"name": "logged-ridge", "options": {"alpha": 10.0}},
                      {"name": "logged-ridge", "options": {"alpha": 1.0}, "label": "ridge-1"}],
            "permutations": 20}


if __name__ == "__main__":
    register()
    from brain_workbench.cli import main

    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        if exc.code in (0, None) and os.environ.get("TABLE_OUT"):
            from brain_workbench.store import open_store
            from brain_workbench.sweep import results_table

            args = sys.argv[1:]
            store = open_store(args[args.index("--store") + 1], mode="r")
            results_table(store, "race").to_json(os.environ["TABLE_OUT"], orient="records", double_precision=15)
        raise
