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


VOCABULARY = sorted({*SHAPES, *TEXTURES, *(c for c, _ in COLOURS), "small", "medium", "large", *TOPIC_WORDS})


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
    return {"name": "vc", "store": str(tmp / "s.zarr"),
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


class ColourWordsEncoder:
    """A text encoder in the 6-d space of ``colour-test``: the object's and background's colour words as RGB."""

    name = "colourwords-test"
    modality = "text"

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("rgb", 1.0)]

    def fingerprint(self) -> str:
        return digest("colourwords-test", 1)

    def encode(self, batch, layers):
        import colorsys

        hue = dict(COLOURS)
        rows = []
        for text in batch:
            found = [w for w in words.content_words(text) if w in hue][:2] or ["red", "red"]
            rows.append(np.concatenate([colorsys.hsv_to_rgb(hue[w], 0.8, 0.9) for w in (found * 2)[:2]]))
        return {"rgb": np.asarray(rows, dtype=np.float32)}


def test_a_folder_bank_is_embedded_by_the_encoder_and_re_ranked_by_a_text_encoder(tmp_path):
    from fixtures_encoders import ColourEncoder

    wb.register("colour-test", ColourEncoder, kind="encoder", replace=True)
    wb.register("colourwords-test", ColourWordsEncoder, kind="encoder", replace=True, modalities=("text",))
    demo = wb.dataset("demo", n_subjects=1, n_train=40, n_test=12)
    folder = tmp_path / "bank"
    folder.mkdir()
    ids = list(demo.ids[:20])
    for sid, image in zip(ids, demo.render(ids)):
        image.save(folder / f"{sid}.png")
    lines = [f"{sid},{caption}" for sid, caption in zip(ids, demo.captions(ids))]
    (folder / "captions.csv").write_text("stimulus_id,caption\n" + "\n".join(lines) + "\n")
    cfg = config(tmp_path, 40, encoder="colour-test", layer="colour", bank=str(folder), k=2, candidates=6,
                 text_encoder={"encoder": "colourwords-test", "layer": "rgb"}, min_r=0.0)
    cfg["encoders"] = [{"name": "colour-test"}, {"name": "colourwords-test"}]
    sweep = Sweep(config_from_dict(cfg))
    sweep.run()
    cell = next(c for c in sweep.plan().cells if c.analysis == "captions")
    assert "caption bank" not in cell.task.bank_path and cell.task.text_path
    out = Store(cfg["store"], mode="r").open(cell.result_path("vc"))
    done = out["captioned"]
    assert done.any() and set(out["caption_ids"][done].reshape(-1)) <= set(ids)
    scores = out["caption_scores"][done]
    assert (np.diff(scores, axis=1) <= 1e-6).all(), "re-ranked captions come best first"
    from brain_workbench_plugins.analyses import readout

    store = Store(cfg["store"], mode="r")
    bank_ids = [str(i) for i in store.open(cell.task.bank_path)["stimulus_ids"]]
    bank = store.open(cell.task.bank_path)["data"].astype(np.float64)
    bank -= bank.mean(0)
    weights = readout.fit_readout(cfg["store"], cell.task.encoding).raw_coef.T
    units = np.flatnonzero(done)[:5]
    projected = projection.project_onto_bank(weights[units], bank, 150.0)
    text = ColourWordsEncoder().encode(demo.captions(bank_ids), ["rgb"])["rgb"].astype(np.float64)
    text_unit = text / np.linalg.norm(text, axis=1, keepdims=True)
    near, _ = voxel_captions.retrieve(projected, bank, np.arange(len(bank_ids)), 6)
    for row, unit in enumerate(units):
        rerank = text_unit[near[row]] @ projection.unit_rows(projected[row:row + 1])[0]
        order = np.argsort(-rerank, kind="stable")[:2]
        assert [bank_ids[i] for i in near[row][order]] == [str(s) for s in out["caption_ids"][unit]]
        np.testing.assert_allclose(out["caption_scores"][unit], rerank[order], atol=1e-5)
