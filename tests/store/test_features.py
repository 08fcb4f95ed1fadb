"""Feature extraction into the store: idempotent, resumable block by block, bounded memory, strict input."""

from __future__ import annotations

import numpy as np
import pytest

import brain_workbench.store.features as features
from brain_workbench.store import EntryWriter, Store
from brain_workbench.store.features import extract_features, load_features
from brain_workbench.store.paths import encoder_key, feature_path
from brain_workbench.types import LayerInfo, StimulusSet, WorkbenchError

N = 45
BLOCK = 10
BATCH = 4


class CountingEncoder:
    """A tiny deterministic encoder that records every call it gets."""

    name = "fake-counting"
    modality = "image"

    def __init__(self, fail_on_call: int | None = None, nan_at: int | None = None) -> None:
        self.fail_on_call = fail_on_call
        self.nan_at = nan_at
        self.calls: list[tuple[list[int], list[str]]] = []
        self.rows = 0

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("a", 0.0), LayerInfo("b", 1.0)]

    def fingerprint(self) -> str:
        return "counting-v1"

    def encode(self, batch: list, layers: list[str]) -> dict[str, np.ndarray]:
        self.calls.append((list(batch), list(layers)))
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise RuntimeError("simulated crash")
        self.rows += len(batch)
        out = {layer: expected(layer, np.asarray(batch)) for layer in layers}
        if self.nan_at is not None and self.nan_at in batch:
            out["a"][list(batch).index(self.nan_at), 0] = np.nan
        return out


def expected(layer: str, values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)[:, None]
    return np.hstack([v, 2 * v, v ** 2]) if layer == "a" else np.hstack([v + k for k in range(5)]).astype(np.float32)


def make_stimuli(n: int = N, modality: str = "image", requests: list[int] | None = None) -> StimulusSet:
    def loader(ids):
        if requests is not None:
            requests.append(len(ids))
        return [int(i[1:]) for i in ids]

    return StimulusSet(tuple(f"s{i:03d}" for i in range(n)), modality, loader)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(features, "suggest_block_rows", lambda row_bytes, n_rows, *a, **k: BLOCK)
    return BLOCK


def n_batches(n: int = N) -> int:
    full, rest = divmod(n, BLOCK)
    return full * -(-BLOCK // BATCH) + -(-rest // BATCH)


def test_extract_writes_every_row_in_order(tmp_store: Store, small_blocks: int) -> None:
    enc, stim = CountingEncoder(), make_stimuli()
    paths = extract_features(tmp_store, enc, stim, batch_size=BATCH)
    values = np.arange(N)
    for layer in ("a", "b"):
        np.testing.assert_array_equal(load_features(tmp_store, paths[layer]), expected(layer, values))
    picked = ["s007", "s001", "s030"]
    np.testing.assert_array_equal(load_features(tmp_store, paths["a"], picked), expected("a", np.array([7, 1, 30])))
    assert len(enc.calls) == n_batches(), "the first batch must double as the shape probe"
    assert tmp_store.verify() == []


def test_second_extraction_encodes_nothing(tmp_store: Store, small_blocks: int) -> None:
    stim = make_stimuli()
    first = extract_features(tmp_store, CountingEncoder(), stim, batch_size=BATCH)
    again = CountingEncoder()
    assert extract_features(tmp_store, again, stim, batch_size=BATCH) == first
    assert again.calls == []


def test_interrupted_extraction_resumes_at_first_unfinished_block(tmp_store: Store, small_blocks: int) -> None:
    stim = make_stimuli()
    per_block = -(-BLOCK // BATCH)
    crashing = CountingEncoder(fail_on_call=2 * per_block + 2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_features(tmp_store, crashing, stim, batch_size=BATCH)
    path = feature_path(encoder_key(crashing, stim), "a")
    assert not tmp_store.is_complete(path)
    assert tmp_store.meta(path)["blocks"]["done"] == [0, 1]

    resumed = CountingEncoder()
    paths = extract_features(tmp_store, resumed, stim, batch_size=BATCH)
    assert resumed.calls[0][0][0] == 2 * BLOCK, "resume must start at the first row of block 2"
    assert len(resumed.calls) == n_batches() - 2 * per_block
    for layer in ("a", "b"):
        assert tmp_store.is_complete(paths[layer])
        np.testing.assert_array_equal(load_features(tmp_store, paths[layer]), expected(layer, np.arange(N)))


def test_memory_is_bounded_by_one_block(tmp_store: Store, small_blocks: int, monkeypatch: pytest.MonkeyPatch) -> None:
    enc, requests = CountingEncoder(), []
    stim = make_stimuli(requests=requests)
    encoded_at_write: dict[tuple[str, int], int] = {}
    original = EntryWriter.write_block

    def spy(self: EntryWriter, block: int, data) -> None:
        encoded_at_write[(self.path.rsplit("/", 1)[-1], block)] = enc.rows
        original(self, block, data)

    monkeypatch.setattr(EntryWriter, "write_block", spy)
    extract_features(tmp_store, enc, stim, batch_size=BATCH)
    for (layer, block), rows in encoded_at_write.items():
        assert rows == min((block + 1) * BLOCK, N), f"block {block} of {layer} was written after {rows} rows"
    assert max(requests) <= BATCH


def test_new_layer_reuses_cached_ones(tmp_store: Store, small_blocks: int) -> None:
    stim = make_stimuli()
    extract_features(tmp_store, CountingEncoder(), stim, layers=["a"], batch_size=BATCH)
    more = CountingEncoder()
    paths = extract_features(tmp_store, more, stim, layers=["a", 1.0], batch_size=BATCH)
    assert set(paths) == {"a", "b"}
    assert {tuple(layers) for _, layers in more.calls} == {("b",)}
    np.testing.assert_array_equal(load_features(tmp_store, paths["b"]), expected("b", np.arange(N)))


def test_progress_counts_every_stimulus_once(tmp_store: Store, small_blocks: int) -> None:
    stim, seen = make_stimuli(), []
    with pytest.raises(RuntimeError):
        extract_features(tmp_store, CountingEncoder(fail_on_call=5), stim, batch_size=BATCH, progress=seen.append)
    seen.clear()
    extract_features(tmp_store, CountingEncoder(), stim, batch_size=BATCH, progress=seen.append)
    assert sum(seen) == N


def test_mismatched_modality_is_refused(tmp_store: Store) -> None:
    enc = CountingEncoder()
    with pytest.raises(WorkbenchError, match="reads image stimuli but the stimulus set is text"):
        extract_features(tmp_store, enc, make_stimuli(modality="text"))
    assert enc.calls == []


def test_nan_features_are_refused(tmp_store: Store, small_blocks: int) -> None:
    stim = make_stimuli()
    enc = CountingEncoder(nan_at=13)
    with pytest.raises(WorkbenchError, match="NaN"):
        extract_features(tmp_store, enc, stim, batch_size=BATCH)
    assert not tmp_store.is_complete(feature_path(encoder_key(enc, stim), "a"))


def test_float16_storage(tmp_store: Store) -> None:
    paths = extract_features(tmp_store, CountingEncoder(), make_stimuli(12), dtype="float16", batch_size=5)
    data = load_features(tmp_store, paths["b"])
    assert data.dtype == np.float16
    np.testing.assert_allclose(data, expected("b", np.arange(12)), rtol=1e-3)
