"""Store integrity: reads are checked against checksums, damaged zarr.json files are named and repaired,
stale writers do not block reruns, and read-only opening never creates anything."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import brain_workbench as wb
from brain_workbench.cli import main
from brain_workbench.store import (
    META,
    ArraySpec,
    CorruptEntryError,
    DamagedEntryError,
    Store,
    open_store,
    writer_identity,
)
from brain_workbench.store.features import load_features
from brain_workbench.sweep import Sweep, results_table
from brain_workbench.sweep.config import config_from_dict
from brain_workbench.types import LayerInfo, WorkbenchError, digest

PATH = "features/enc-1a2b/layer3"
ENCODED: list[tuple[str, ...]] = []


def cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """Run the real console entry point; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def write_entry(store: Store, path: str = PATH, n_rows: int = 10, finish: bool = True) -> np.ndarray:
    x = np.arange(n_rows * 3, dtype=np.float32).reshape(n_rows, 3)
    specs = {"x": ArraySpec((n_rows, 3), "float32"), "ids": ArraySpec((n_rows,), "str", blocked=False)}
    with store.writer(path, specs, kind="features", block_rows=4) as w:
        for block in w.pending_blocks():
            w.write_block(block, {"x": x[w.block_slice(block)]})
        w.put("ids", np.array([f"stimulus-{i}" for i in range(n_rows)]))
        if finish:
            w.finish()
    return x


def rewrite(store: Store, path: str, index, value) -> None:
    """Change values behind the store's back; they still decode."""
    zarr.open_array(store=store.url, path=path, mode="r+")[index] = value


# ---- checked reads --------------------------------------------------------------------------
def test_changed_values_are_refused_on_read_naming_the_entry(tmp_store: Store) -> None:
    x = write_entry(tmp_store)
    rewrite(tmp_store, f"{PATH}/x", (5, 1), 42.0)
    entry = tmp_store.open(PATH)
    with pytest.raises(CorruptEntryError, match=rf"entry '{PATH}' in .* is corrupt: array 'x' block 1 does not match "
                                                r"its checksum.*workbench store repair"):
        entry["x"]
    with pytest.raises(CorruptEntryError, match="block 1"):
        entry.rows("x", [9, 5])
    np.testing.assert_array_equal(entry.rows("x", [9, 0, 8, 3]), x[[9, 0, 8, 3]])  # blocks 0 and 2 are intact
    unchecked = tmp_store.open(PATH, verify=False)["x"]
    assert unchecked[5, 1] == 42.0
    rewrite(tmp_store, f"{PATH}/ids", 0, "stimulus-X")
    with pytest.raises(CorruptEntryError, match="array 'ids' block all"):
        tmp_store.open(PATH)["ids"]


def test_feature_rows_are_checked(tmp_store: Store) -> None:
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    specs = {"data": ArraySpec((10, 3), "float32"), "stimulus_ids": ArraySpec((10,), "str", blocked=False)}
    with tmp_store.writer("features/enc-9/l", specs, kind="features", block_rows=4) as w:
        for b in w.pending_blocks():
            w.write_block(b, {"data": x[w.block_slice(b)]})
        w.put("stimulus_ids", np.array([f"s{i}" for i in range(10)]))
        w.finish()
    np.testing.assert_array_equal(load_features(tmp_store, "features/enc-9/l", ["s7", "s2"]), x[[7, 2]])
    rewrite(tmp_store, "features/enc-9/l/data", (8, 0), -1.0)
    with pytest.raises(CorruptEntryError, match="'data' block 2"):
        load_features(tmp_store, "features/enc-9/l")
    with pytest.raises(CorruptEntryError, match="'data' block 2"):
        load_features(tmp_store, "features/enc-9/l", ["s0", "s9"])
    np.testing.assert_array_equal(load_features(tmp_store, "features/enc-9/l", ["s1", "s4"]), x[[1, 4]])


class ProbeColour:
    """A fast image encoder with two layers (mean and spread of each colour channel)."""

    name, modality = "probe-colour", "image"

    def layers(self):
        return [LayerInfo("mean", 0.0), LayerInfo("spread", 1.0)]

    def encode(self, batch, layers):
        ENCODED.append(tuple(layers))
        arrays = [np.asarray(im.convert("RGB").resize((8, 8)), dtype=np.float32) / 255 for im in batch]
        out = {"mean": np.stack([a.mean((0, 1)) for a in arrays]),
               "spread": np.stack([np.r_[a.std((0, 1)), a.reshape(-1, 3)[:8].ravel()] for a in arrays])}
        return {layer: out[layer] for layer in layers}

    def fingerprint(self):
        return digest("probe-colour", 1)


def sweep_config(store: Path, cv: int = 5) -> dict:
    return {"name": "integrity", "store": str(store),
            "dataset": {"name": "demo", "options": {"n_subjects": 1, "n_train": 40, "n_test": 12}},
            "encoders": [{"name": "probe-colour", "layers": [0.0, 1.0]}],
            "heads": [{"name": "ridge", "options": {"cv": cv}}], "permutations": 0}


@pytest.fixture()
def probe() -> None:
    wb.register("probe-colour", ProbeColour, kind="encoder", replace=True)
    ENCODED.clear()


def _mean_r(store: Store) -> dict[str, float]:
    table = results_table(store, "integrity")
    return table[table.roi == "all"].set_index("layer")["mean_r"].to_dict()


def test_a_sweep_refuses_changed_features_and_repair_recomputes_exactly_them(
        tmp_path: Path, probe: None, capsys: pytest.CaptureFixture) -> None:
    clean = Store(tmp_path / "clean.zarr")
    Sweep(config_from_dict(sweep_config(clean.url, cv=3)), clean).run()
    expected = _mean_r(clean)

    store = Store(tmp_path / "s.zarr")
    Sweep(config_from_dict(sweep_config(store.url)), store).run()
    [spread] = [e.path for e in store.ls("features") if e.path.endswith("/spread")]
    data = zarr.open_array(store=store.url, path=f"{spread}/data", mode="r+")
    data[:7] = data[:7] * 3.0 + 0.5
    assert [(p.path, p.status) for p in store.verify()] == [(spread, "corrupt")]

    with pytest.raises(CorruptEntryError, match=rf"entry '{spread}' .* is corrupt: array 'data' block 0"):
        Sweep(config_from_dict(sweep_config(store.url, cv=3)), store).run()

    code, out, _ = cli(capsys, "store", "repair", "--dry-run", "--store", store.url)
    assert code == 0 and spread in out and "would repair 1 entries" in out and store.verify() != []
    code, out, _ = cli(capsys, "store", "repair", "--store", store.url)
    assert code == 0 and "repaired 1 entries" in out and store.verify() == []
    assert store.meta(spread) is None and len(store.ls("features")) == 1

    ENCODED.clear()
    summary = Sweep(config_from_dict(sweep_config(store.url, cv=3)), store).run()
    assert ENCODED and set(ENCODED) == {("spread",)}, "only the removed layer may be re-encoded"
    assert summary["computed"] == 1, "the refused run kept its finished 'mean' cell; only 'spread' is left"
    assert _mean_r(store) == pytest.approx(expected, abs=1e-6)


def test_figure_refuses_a_changed_score(tmp_path: Path, probe: None, capsys: pytest.CaptureFixture) -> None:
    store = Store(tmp_path / "s.zarr")
    Sweep(config_from_dict(sweep_config(store.url)), store).run()
    [cell] = [e.path for e in store.ls("results/integrity") if e.kind == "cell" and
              e.attrs["cell"]["layer"] == "spread"]
    score = zarr.open_array(store=store.url, path=f"{cell}/score", mode="r+")
    score[:50] = 0.9
    code, out, err = cli(capsys, "figure", "brainmap", "integrity", "--layer", "spread", "--store", store.url,
                         "--out", str(tmp_path / "map.png"))
    assert code == 1 and f"entry '{cell}'" in err and "array 'score' block all does not match" in err
    assert "Traceback" not in err and not (tmp_path / "map.png").exists()


def test_a_changed_score_in_a_cells_attributes_is_found_by_verify_results_and_repair(
        tmp_path: Path, probe: None, capsys: pytest.CaptureFixture) -> None:
    store = Store(tmp_path / "s.zarr")
    Sweep(config_from_dict(sweep_config(store.url)), store).run()
    [cell] = [e.path for e in store.ls("results/integrity") if e.kind == "cell" and
              e.attrs["cell"]["layer"] == "spread"]
    doc_path = Path(store.url) / cell / "zarr.json"
    doc = json.loads(doc_path.read_text())
    row = doc["attributes"]["rois"][0]
    row["mean_r"] = round(row["mean_r"] + 0.1, 6)  # one digit changed by hand
    doc_path.write_text(json.dumps(doc))
    assert [(p.path, p.status) for p in store.verify()] == [(cell, "corrupt")]
    assert "attributes" in store.verify()[0].detail
    code, _, err = cli(capsys, "results", "show", "integrity", "--store", store.url)
    assert code == 1 and f"entry '{cell}'" in err and "attributes (scores, ROI rows, task) do not match" in err
    code, out, _ = cli(capsys, "store", "repair", "--store", store.url)
    assert code == 0 and "repaired 1 entries" in out and store.verify() == []


# ---- damaged zarr.json ----------------------------------------------------------------------
def test_truncated_entry_json_is_named_reported_and_repaired(
        tmp_path: Path, probe: None, capsys: pytest.CaptureFixture) -> None:
    store = Store(tmp_path / "s.zarr")
    cfg = config_from_dict(sweep_config(store.url))
    Sweep(cfg, store).run()
    [mean] = [e.path for e in store.ls("features") if e.path.endswith("/mean")]
    node = Path(store.url) / mean / "zarr.json"
    node.write_bytes(node.read_bytes()[:40])

    code, out, _ = cli(capsys, "store", "ls", "--store", store.url, "--json")
    listed = {e["path"]: e for e in json.loads(out)}
    assert code == 0 and listed[mean]["state"] == "damaged" and str(node) in listed[mean]["damage"]
    code, out, _ = cli(capsys, "store", "verify", "--store", store.url, "--json")
    assert code == 1 and [(p["path"], p["status"]) for p in json.loads(out)] == [(mean, "damaged")]
    code, _, err = cli(capsys, "store", "gc", "--store", store.url)
    assert code == 1 and err.startswith("error: store node") and str(node) in err and "workbench store repair" in err
    with pytest.raises(DamagedEntryError, match=rf"{node} is unreadable \(JSONDecodeError.*workbench store repair"):
        Sweep(cfg, store).run()

    code, out, _ = cli(capsys, "store", "repair", "--store", store.url)
    assert code == 0 and "repaired 1 entries" in out and store.verify() == []
    ENCODED.clear()
    assert Sweep(cfg, store).run()["computed"] == 0
    assert set(ENCODED) == {("mean",)}


def test_deleted_entry_json_is_reported_not_silently_recomputed(tmp_store: Store) -> None:
    write_entry(tmp_store)
    (Path(tmp_store.url) / PATH / "zarr.json").unlink()
    [problem] = tmp_store.verify()
    assert (problem.path, problem.status) == (PATH, "damaged") and problem.detail.endswith("zarr.json is missing")
    with pytest.raises(DamagedEntryError, match="zarr.json is missing; run `workbench store repair"):
        tmp_store.is_complete(PATH)
    with pytest.raises(DamagedEntryError):
        write_entry(tmp_store)
    assert [p.path for p in tmp_store.repair()] == [PATH]
    assert tmp_store.verify() == [] and tmp_store.ls() == []
    write_entry(tmp_store)
    assert tmp_store.is_complete(PATH)


def test_damaged_group_is_rebuilt_and_damaged_array_metadata_removed(tmp_store: Store) -> None:
    write_entry(tmp_store, "features/a/one")
    write_entry(tmp_store, "features/a/two")
    write_entry(tmp_store, "features/b/three")
    (Path(tmp_store.url) / "features" / "a" / "zarr.json").write_text("{")
    (Path(tmp_store.url) / "features" / "b" / "three" / "x" / "zarr.json").write_text('{"zarr_form')
    with pytest.raises(DamagedEntryError, match="features/a/zarr.json is unreadable.*to rebuild it"):
        tmp_store.ls(damaged=False)
    with pytest.raises(CorruptEntryError, match="metadata of array 'x' are unreadable"):
        tmp_store.open("features/b/three")["x"]
    problems = {p.path: p.status for p in tmp_store.verify()}
    assert problems == {"features/a": "damaged", "features/b/three": "corrupt"}
    fixed = {p.path: p.detail for p in tmp_store.repair()}
    assert fixed["features/a"].endswith("rebuilt as an empty group") and fixed["features/b/three"].endswith("removed")
    assert tmp_store.verify() == [] and sorted(e.path for e in tmp_store.ls()) == ["features/a/one", "features/a/two"]
    np.testing.assert_array_equal(tmp_store.open("features/a/two")["x"], np.arange(30).reshape(10, 3))


# ---- writers --------------------------------------------------------------------------------
def _set_writer(store: Store, path: str, **writer) -> None:
    group = store.root[path]
    meta = dict(group.attrs[META])
    meta["writer"] = {"host": socket.gethostname(), "started": time.time(), "updated": time.time(), **writer}
    group.attrs[META] = meta


def test_a_reused_pid_does_not_block_reruns(tmp_store: Store, capsys: pytest.CaptureFixture) -> None:
    assert writer_identity()["pid_start"] is not None, "this test needs /proc"
    write_entry(tmp_store, finish=False)
    _set_writer(tmp_store, PATH, pid=1, pid_start=writer_identity()["pid_start"] + 10**6)
    assert tmp_store.gc(dry_run=True) == [PATH]
    write_entry(tmp_store)  # resumes: process 1 is alive but is not the process that wrote the entry
    assert tmp_store.is_complete(PATH) and tmp_store.verify() == []


def test_an_old_writer_without_start_time_goes_stale_and_force_overrides(
        tmp_store: Store, capsys: pytest.CaptureFixture) -> None:
    write_entry(tmp_store, finish=False)
    _set_writer(tmp_store, PATH, pid=1, updated=time.time() - 7 * 3600)
    write_entry(tmp_store, finish=False)  # silent for seven hours: stale even though pid 1 lives
    _set_writer(tmp_store, PATH, pid=1)
    with pytest.raises(WorkbenchError, match=r"being written by process 1 on .*last progress 0 min ago.*"
                                             r"workbench store gc --force"):
        write_entry(tmp_store)
    assert tmp_store.gc() == []
    with tmp_store.writer(PATH, {"x": ArraySpec((10, 3), "float32"), "ids": ArraySpec((10,), "str", blocked=False)},
                          kind="features", block_rows=4, force=True) as w:
        assert w.pending_blocks() == []
    _set_writer(tmp_store, PATH, pid=1)
    code, out, _ = cli(capsys, "store", "gc", "--force", "--store", tmp_store.url)
    assert code == 0 and "removed 1 entries" in out and tmp_store.ls() == []


def test_own_and_live_writers_are_recorded_with_their_start_time(tmp_store: Store) -> None:
    write_entry(tmp_store, finish=False)
    writer = tmp_store.meta(PATH)
    assert writer["writer"] is None
    with tmp_store.writer(PATH, {"x": ArraySpec((10, 3), "float32"), "ids": ArraySpec((10,), "str", blocked=False)},
                          kind="features", block_rows=4):
        recorded = tmp_store.meta(PATH)["writer"]
        assert recorded["pid"] == os.getpid() and recorded["pid_start"] == writer_identity()["pid_start"]
        assert tmp_store.gc() == [], "a live writer's entry is kept"


# ---- read-only opening ----------------------------------------------------------------------
def test_readers_never_create(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    typo = tmp_path / "typo.zarr"
    with pytest.raises(WorkbenchError, match="there is no store at"):
        open_store(typo, mode="r")
    plain = tmp_path / "notes"
    plain.mkdir()
    (plain / "a.txt").write_text("mine")
    for mode in ("r", "r+", "a"):
        with pytest.raises(WorkbenchError, match="is a folder but not a zarr store"):
            Store(plain, mode=mode)
    with pytest.raises(WorkbenchError, match="there is no store at"):
        open_store("memory://nowhere-at-all/s.zarr", mode="r")
    for command in ("ls", "verify"):
        code, _, err = cli(capsys, "store", command, "--store", str(typo))
        assert code == 1 and "there is no store at" in err
    assert not typo.exists() and sorted(os.listdir(plain)) == ["a.txt"]

    store = Store(tmp_path / "s.zarr")
    write_entry(store)
    before = sorted(str(p.relative_to(store.url)) + str(p.stat().st_mtime_ns) for p in Path(store.url).rglob("*"))
    reader = open_store(store.url, mode="r")
    np.testing.assert_array_equal(reader.open(PATH)["x"], np.arange(30).reshape(10, 3))
    assert reader.verify() == [] and [e.path for e in reader.ls()] == [PATH]
    for attempt in (lambda: write_entry(reader, "features/enc-1a2b/other"), lambda: reader.delete(PATH),
                    lambda: reader.repair()):
        with pytest.raises(WorkbenchError, match="opened read-only"):
            attempt()
    after = sorted(str(p.relative_to(store.url)) + str(p.stat().st_mtime_ns) for p in Path(store.url).rglob("*"))
    assert before == after


def test_a_node_whose_zarr_json_is_being_written_is_not_yet_a_node(tmp_store: Store) -> None:
    """zarr creates a node's folder, then writes ``zarr.<uuid>.partial`` and renames it: a reader polling
    in between (another sweep waiting for this entry) must see no entry, not a damaged one."""
    tmp_store.root.require_group("results/race")
    folder = Path(tmp_store.url) / "results" / "race" / "s1-abc"
    folder.mkdir()
    (folder / f"zarr.{'0123456789abcdef' * 2}.partial").write_bytes(b'{"zarr_format": 3, "node_')
    assert not tmp_store.is_complete("results/race/s1-abc") and tmp_store.attrs("results/race/s1-abc") is None
    assert [e.path for e in tmp_store.ls() if e.state == "damaged"] == []
    (folder / "stray.bin").write_bytes(b"x")
    with pytest.raises(DamagedEntryError, match="s1-abc"):
        tmp_store.is_complete("results/race/s1-abc")


def test_image_reads_are_checked_and_an_undecodable_chunk_names_the_entry(tmp_store: Store) -> None:
    from brain_workbench.store.images import images_path, read_images, write_images

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    ids = [f"s{i}" for i in range(6)]
    write_images(tmp_store, "seen-test", ids, images)
    np.testing.assert_array_equal(read_images(tmp_store, "seen-test", ["s5", "s0"]), images[[5, 0]])
    path = images_path("seen-test")
    rewrite(tmp_store, f"{path}/images", (2, 0, 0, 0), (int(images[2, 0, 0, 0]) + 1) % 256)  # still decodes
    with pytest.raises(CorruptEntryError, match=rf"entry '{path}' .* is corrupt: array 'images'"):
        read_images(tmp_store, "seen-test")
    with pytest.raises(CorruptEntryError, match=rf"entry '{path}'"):
        read_images(tmp_store, "seen-test", ["s2"])
    chunks = [p for p in (Path(tmp_store.url) / path / "images").rglob("*") if p.is_file() and p.name != "zarr.json"]
    for chunk in chunks:
        chunk.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 4)  # a zstd magic number, then nonsense
    with pytest.raises(CorruptEntryError, match=rf"entry '{path}'"):
        read_images(tmp_store, "seen-test", ["s0"])
