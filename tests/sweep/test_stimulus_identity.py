"""Features are keyed by what the stimuli are, not only by their ids: two datasets (or two versions of one) that
use the same ids for other pictures never share a feature entry."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_dataset_stimuli_identity
from brain_workbench.sdk.data import load_features
from brain_workbench.store import Store
from brain_workbench.sweep import Sweep
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import StimulusSet, digest, identified_stimuli
from brain_workbench_plugins.demo import DemoDataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures_encoders import ColourEncoder  # noqa: E402


class Variant(DemoDataset):
    """The demo's recordings and ids; ``variant=1`` shows every picture colour-inverted. Like many third-party
    datasets it gives no content digest."""

    name = "variant-test"

    def __init__(self, variant: int = 0, **options):
        super().__init__(**options)
        self.variant = variant

    def stimuli(self, modality=None):
        base = super().stimuli(modality)
        from PIL import ImageOps

        def load(ids):
            images = base.get(ids)
            return [ImageOps.invert(im.convert("RGB")) for im in images] if self.variant else images

        return StimulusSet(base.ids, base.modality, load)

    def fingerprint(self):
        return digest(super().fingerprint(), self.variant)


@pytest.fixture(autouse=True)
def _plugins():
    wb.register("variant-test", Variant, kind="dataset", replace=True)
    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)


def run(tmp_path: Path, variant: int) -> tuple[str, np.ndarray]:
    cfg = config_from_dict({"name": f"v{variant}", "store": str(tmp_path / "s.zarr"),
                            "dataset": {"name": "variant-test",
                                        "options": {"variant": variant, "n_subjects": 1, "n_train": 20, "n_test": 10}},
                            "encoders": [{"name": "colour-test"}], "heads": [], "metrics": [{"name": "rsa"}],
                            "permutations": 0})
    sweep = Sweep(cfg)
    sweep.run()
    from brain_workbench.store.paths import feature_path

    job = sweep.plan().extractions[0]
    path = feature_path(job.key, job.layers[0])
    ids = list(sweep.stimuli("image").ids[:5])
    return path, load_features(Store(cfg.store, mode="r"), path, ids)


def test_same_ids_other_pictures_get_their_own_features(tmp_path):
    path0, x0 = run(tmp_path, 0)
    path1, x1 = run(tmp_path, 1)
    assert path0 != path1, "the second dataset's features must not be read from the first one's entry"
    assert not np.allclose(x0, x1)


def test_a_stimulus_set_without_a_digest_is_keyed_by_its_dataset():
    a, b = Variant(variant=0, n_subjects=1), Variant(variant=1, n_subjects=1)
    assert a.stimuli().ids == b.stimuli().ids and a.stimuli().digest == b.stimuli().digest  # ids only
    assert identified_stimuli(a, "image").digest != identified_stimuli(b, "image").digest
    demo = DemoDataset(n_subjects=1)
    assert identified_stimuli(demo, "image").digest == demo.stimuli("image").digest, "a given digest is kept"


def test_the_conformance_kit_refuses_an_ids_only_digest():
    class IdsOnly(Variant):
        def stimuli(self, modality=None):
            base = super().stimuli(modality)
            return StimulusSet(base.ids, base.modality, base.loader, digest(base.modality, list(base.ids)))

    with pytest.raises(AssertionError, match="hashes only the modality and the ids"):
        check_dataset_stimuli_identity(IdsOnly(n_subjects=1))
    check_dataset_stimuli_identity(Variant(n_subjects=1))
