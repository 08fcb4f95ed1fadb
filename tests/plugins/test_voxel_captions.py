"""Voxel captions (BrainSCUBA by retrieval): a planted unit retrieves its own bank item's captions, the demo's
semantic ROI is captioned with its planted topic words, and bad inputs are refused in one sentence before work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.sdk.analysis import Store
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, digest
from brain_workbench_plugins.analyses.concepts import projection, voxel_captions, words
from brain_workbench_plugins.demo import COLOURS, SHAPES, TEXTURES, TOPICS

TOPIC_WORDS = {w for _, phrase in TOPICS for w in words.content_words(phrase)}


VOCABULARY = sorted({*SHAPES, *(s + "s" for s in SHAPES), "crosses", *TEXTURES, *(c for c, _ in COLOURS),
                     "small", "medium", "large", *TOPIC_WORDS})


class BagOfWordsEncoder:
    """A text encoder: which words of the demo's caption vocabulary a caption holds (one dimension per word)."""

    name = "words-test"
    modality = "text"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("words", 1.0)]

    def fingerprint(self) -> str:
        return digest("words-test", VOCABULARY)

    def encode(self, batch, layers):
        index = {w: i for i, w in enumerate(VOCABULARY)}
        out = np.zeros((len(batch), len(VOCABULARY)), dtype=np.float32)
        for row, text in enumerate(batch):
            for word in words.content_words(text):
                if word in index:
                    out[row, index[word]] = 1.0
        return {"words": out}


@pytest.fixture(autouse=True)
def _words_encoder():
    wb.register("words-test", BagOfWordsEncoder, kind="encoder", replace=True, modalities=("text",))


def config(tmp: Path, n_train: int = 300, **captions) -> dict:
    return {"name": "vc", "store": str(tmp / "s.zarr"), "rois": ["semantic", "V1"],
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": n_train, "n_test": 30}},
            "encoders": [{"name": "words-test"}], "heads": [{"name": "ridge"}], "metrics": [], "permutations": 0,
            "captions": {"encoder": "words-test", "layer": "words", "rois": ["semantic", "V1"], "k": 5, **captions}}


def test_a_planted_unit_retrieves_its_bank_items_caption() -> None:
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((50, 16))
    captioned = np.flatnonzero(np.arange(50) % 5 != 4)
    weights = bank[[7, 12, 30]] * 3.0
    index, value = voxel_captions.retrieve(projection.project_onto_bank(weights, bank, 150.0), bank, captioned, 2)
    assert index[:, 0].tolist() == [7, 12, 30]
    np.testing.assert_allclose(value[:, 0], 1.0, atol=1e-6)
    index, _ = voxel_captions.retrieve(projection.project_onto_bank(bank[[9]], bank, 150.0), bank, captioned, 1)
    assert index[0, 0] != 9 and index[0, 0] in captioned, "an uncaptioned item is never retrieved"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wb.register("words-test", BagOfWordsEncoder, kind="encoder", replace=True, modalities=("text",))
    sweep = Sweep(config_from_dict(config(tmp_path_factory.mktemp("captions"))))
    sweep.run()
    return sweep


def test_the_semantic_roi_is_captioned_with_its_planted_topic(finished):
    rows = results_table(finished.store, "vc")
    rows = rows[rows["kind"] == "captions"].set_index("roi")
    cell = next(c for c in finished.plan().cells if c.analysis == "captions")
    out = Store(finished.config.store, mode="r").open(cell.result_path("vc"))
    semantic = [str(w) for w in out["words_semantic"]]
    v1 = [str(w) for w in out["words_V1"]]
    assert len(TOPIC_WORDS & set(semantic[:5])) >= 3, semantic
    assert len(TOPIC_WORDS & set(semantic)) >= len(TOPIC_WORDS & set(v1)) + 2, (semantic, v1)
    assert rows.loc["semantic", "captioned_fraction"] > rows.loc["V1", "captioned_fraction"]
    assert str(out["word"][0]) == semantic[0] and rows.loc["semantic", "word_share"] > 0
    ids = out["caption_ids"]
    assert ids.shape[1] == 5 and (ids[out["captioned"]] != "").all() and (ids[~out["captioned"]] == "").all()


def test_bad_caption_inputs_are_refused_before_work(tmp_path):
    folder = tmp_path / "bank"
    folder.mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(folder / "img-1.png")
    (folder / "captions.csv").write_text("stimulus_id,caption\nimg-9,a cat\n")
    unmatched = tmp_path / "c.csv"
    unmatched.write_text("stimulus_id,caption\nimg-1,a cat\n")
    for captions, message in (({"bank": str(folder)}, "none is an image of this dataset"),
                              ({"caption_file": str(unmatched)}, "none is an image of this dataset"),
                              ({"bank": str(tmp_path / "nowhere")}, "neither 'stimuli' nor an existing image folder"),
                              ({"captioner": str(tmp_path / "nowhere")}, "captioner .* does not exist"),
                              ({"captioner": str(folder)}, "does not load")):
        with pytest.raises(wb.WorkbenchError, match=message):
            Sweep(config_from_dict(config(tmp_path, 40, **captions))).run()
    (folder / "captions.csv").write_text("stimulus_id,caption\nimg-1,a cat\n")
    with pytest.raises(wb.WorkbenchError, match="reads text, so it has no image-embedding bank"):
        Sweep(config_from_dict(config(tmp_path, 40, bank=str(folder)))).run()
    assert not (tmp_path / "s.zarr" / "features").exists(), "refused before extracting features"
