"""The ``latent-match`` analysis through a tiny sweep: an SAE matched with itself shares every latent, with another
seed's far fewer; SAEs reading different stimuli are refused before work."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures_encoders import ColourEncoder  # noqa: E402
from test_voxel_captions import BagOfWordsEncoder  # noqa: E402


def sae(label: str, seed: int, base: str = "colour-test") -> dict:
    return {"name": "sae", "options": {"base": base, "d_sae": 24, "k": 3, "seed": seed}, "layers": ["latents"],
            "label": label}


def config(tmp: Path, b: str = "same") -> dict:
    return {"name": "lm", "store": str(tmp / "s.zarr"),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [sae("one", 0), sae("same", 0), sae("other", 1), sae("text", 0, "words-test")],
            "heads": [], "metrics": [], "permutations": 0,
            "latent_match": {"a": "one", "b": b, "permutations": 30, "threshold": 0.9}}


@pytest.fixture(autouse=True)
def _encoders():
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    wb.register("words-test", BagOfWordsEncoder, kind="encoder", replace=True, modalities=("text",))


def test_an_sae_shares_every_latent_with_itself_and_fewer_with_another_seed(tmp_path):
    found = {}
    for b in ("same", "other"):
        sweep = Sweep(config_from_dict(config(tmp_path, b)))
        with pytest.warns(UserWarning, match="untrained TopK SAE"):
            sweep.run()
        table = results_table(sweep.store, "lm")
        found[b] = table[table["kind"] == "latent-match"].set_index(["similarity", "method"])
    same, other = found["same"], found["other"]
    assert set(same.index) == {(s, m) for s in ("activation", "decoder") for m in ("greedy", "hungarian")}
    assert (same["fraction_matched"] == 1.0).all() and np.allclose(same["mean_similarity"], 1.0, atol=1e-5)
    assert (same["svcca"] > 0.99).all() and (same["p_svcca"] < 0.05).all() and (same["rsa"] > 0.99).all()
    assert (other["fraction_matched"] < 0.5).all()
    assert (same["mean_similarity"] > other["mean_similarity"]).all()
    assert (same["null_mean_similarity"] < same["mean_similarity"]).all()


def test_saes_on_different_stimuli_are_refused_before_work(tmp_path):
    with pytest.raises(wb.WorkbenchError, match="latents are matched on the same stimuli"):
        Sweep(config_from_dict(config(tmp_path, "text"))).run()
    with pytest.raises(wb.WorkbenchError, match="not an `sae` encoder"):
        cfg = config(tmp_path)
        cfg["encoders"].append({"name": "colour-test"})
        cfg["latent_match"]["b"] = "colour-test"
        Sweep(config_from_dict(cfg)).run()
    assert not (tmp_path / "s.zarr" / "features").exists()
