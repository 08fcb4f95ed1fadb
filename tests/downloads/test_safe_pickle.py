"""brain_workbench.downloads.safe_pickle: pickled .npy dicts load without running code; anything else is refused."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from brain_workbench.downloads.safe_pickle import load_npy, load_npy_dict
from brain_workbench.types import WorkbenchError
from fixtures_datasets import make_things_eeg2


class MakeDir:
    """Unpickling this calls os.mkdir(marker): code execution, visible as a new folder."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


class RunsExec:
    """Unpickling this calls builtins.exec, which could run anything."""

    def __init__(self, marker: Path) -> None:
        self.code = f"open({str(marker)!r}, 'w').write('pwned')"

    def __reduce__(self):
        return exec, (self.code,)


@pytest.mark.parametrize("payload", [MakeDir, RunsExec])
@pytest.mark.parametrize("nested", [False, True])
def test_malicious_npy_is_refused_and_runs_nothing(tmp_path: Path, payload, nested: bool) -> None:
    marker = tmp_path / "pwned"
    evil = payload(marker)
    path = tmp_path / "evil.npy"
    np.save(path, {"preprocessed_eeg_data": np.zeros(3), "ch_names": [evil]} if nested else np.array(evil, dtype=object),
            allow_pickle=True)
    with pytest.raises(WorkbenchError, match=r"evil.npy asks to run (posix\.mkdir|builtins\.exec).*refusing to load"):
        load_npy_dict(path)
    assert not marker.exists()


def test_fixture_dicts_load_like_numpy(tmp_path: Path) -> None:
    make_things_eeg2(tmp_path, subjects=(1,))
    files = [tmp_path / "image_set" / "image_metadata.npy",
             tmp_path / "Preprocessed_data" / "sub-01" / "preprocessed_eeg_training.npy"]
    for path in files:
        want = np.load(path, allow_pickle=True).item()
        got = load_npy_dict(path)
        assert list(got) == list(want)
        for key, value in want.items():
            if isinstance(value, np.ndarray):
                assert got[key].dtype == value.dtype
                np.testing.assert_array_equal(got[key], value)
            else:
                assert got[key] == value


def test_plain_arrays_scalars_and_errors(tmp_path: Path) -> None:
    plain = tmp_path / "plain.npy"
    np.save(plain, np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(load_npy(plain), np.arange(6.0).reshape(2, 3))
    mixed = tmp_path / "mixed.npy"
    np.save(mixed, {"scalar": np.float32(2.5), "strings": np.array(["a", None], dtype=object), "t": (1, "x")})
    got = load_npy_dict(mixed)
    assert got["scalar"] == np.float32(2.5) and got["strings"].tolist() == ["a", None] and got["t"] == (1, "x")
    with pytest.raises(WorkbenchError, match="holds a ndarray, not a dict"):
        load_npy_dict(plain)
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(mixed.read_bytes()[:-20])
    with pytest.raises(WorkbenchError, match=r"truncated.npy .*truncated or corrupt: get it again"):
        load_npy_dict(truncated, hint="get it again")
    with pytest.raises(WorkbenchError, match="cannot read"):
        load_npy(tmp_path / "missing.npy")
