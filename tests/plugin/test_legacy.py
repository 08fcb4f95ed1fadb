"""The previous release's API, for one release: a plugin written against it (old import name ``workbench``, old
entry-point group, ``register(options=..., modality=...)``, ``workbench.sweep.runner.load_cell_scores``,
``Store.load_recording``) installs and runs, each old spelling with a DeprecationWarning; a real ``workbench``
from another distribution always wins over the alias."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import brain_workbench as wb
from brain_workbench.plugin import legacy
from brain_workbench.plugin.registry import get_registry
from fixtures_install import install_plugins


@pytest.fixture
def forget_old_names():
    """Drop the old names and the old-API plugin from sys.modules before and after, so each test imports afresh."""
    def drop():
        for name in [n for n in sys.modules if n == "workbench" or n.startswith(("workbench.", "workbench_"))]:
            del sys.modules[name]
    drop()
    yield
    drop()


def test_old_module_names_resolve_to_the_new_modules_with_a_warning(forget_old_names):
    import brain_workbench.plugin.registry as registry
    import brain_workbench.sdk as sdk

    with pytest.warns(DeprecationWarning, match=r"'workbench' is the previous release's name of 'brain_workbench'"):
        import workbench
    assert workbench is wb
    with pytest.warns(DeprecationWarning, match=r"'workbench.sdk' is the previous release's name of "
                                                r"'brain_workbench.sdk'"):
        import workbench.sdk as old_sdk
    assert old_sdk is sdk and sdk.__spec__.name == "brain_workbench.sdk"
    with pytest.warns(DeprecationWarning, match="brain_workbench.plugin.registry"):
        import workbench.registry as old_registry
    assert old_registry is registry
    with pytest.raises(ModuleNotFoundError):
        import workbench.no_such_module  # noqa: F401


def test_a_real_workbench_of_another_distribution_wins(forget_old_names, tmp_path, monkeypatch):
    other = tmp_path / "site" / "workbench"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("OWNER = 'another distribution'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        import workbench
    assert workbench.OWNER == "another distribution"
    del sys.modules["workbench"]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(legacy, "other_workbench", lambda: "workbench")  # installed, but its files not on sys.path
    assert legacy.OldNameFinder().find_spec("workbench.sdk") is None


def test_old_card_keys_warn_and_are_read(fresh_registry):
    def factory(a: int = 0) -> dict:
        return {"a": a}

    with pytest.warns(DeprecationWarning, match=r"register\(options=...\) is the previous release's card"):
        wb.register("old-options", factory, kind="metric", options={"a": "first"})
    assert wb.metric("old-options", a=2) == {"a": 2}
    with pytest.warns(DeprecationWarning, match="card key 'modality' is the previous release's"):
        entry = wb.register("old-modality", factory, kind="encoder", modality="image")
    assert entry.card.modalities == ("image",)
    with pytest.raises(wb.WorkbenchError, match="unknown card key 'modalty'"):
        wb.register("typo", factory, kind="encoder", modalty="image")


def test_a_plugin_written_for_the_previous_release_runs(tmp_path, monkeypatch, fresh_registry, forget_old_names):
    from brain_workbench.sweep import Sweep, results_table
    from brain_workbench.sweep.config import config_from_dict

    site = install_plugins(tmp_path / "site", ("workbench-oldapi",))
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(DeprecationWarning) as caught:
        registry = get_registry()
        assert registry.plugins["oldapi"].status == "ok", registry.plugins["oldapi"].error
        sweep = Sweep(config_from_dict({
            "name": "old", "store": str(tmp_path / "s.zarr"), "seed": 0, "dataset": {"name": "oldapi-words"},
            "encoders": [{"name": "oldapi-hash", "options": {"width": 6}}],
            "heads": [{"name": "ridge", "options": {"cv": 3}}], "permutations": 0}))
        sweep.run()
        import workbench_oldapi

        summary = workbench_oldapi.best_layer(sweep.store, "old")
    said = "\n".join(str(w.message) for w in caught if w.category is DeprecationWarning)
    for expected in ("group 'workbench'", "'workbench.sdk' is the previous release's name",
                     "register(options=...) is the previous release's card", "card key 'modality'",
                     "load_cell_scores moved from workbench.sweep.runner", "Store.load_recording(path)"):
        assert expected in said, expected
    frame = results_table(sweep.store, "old")
    assert set(frame["encoder"]) == {"oldapi-hash"} and frame["mean_r"].notna().all()
    best = frame[frame.roi == "all"].sort_values("mean_r").iloc[-1]
    assert summary == {"layer": best["layer"], "encoder": "oldapi-hash", "n_units": 12}
    assert registry.entries["encoder"]["oldapi-hash"].card.modalities == ("text",)
    assert np.isfinite(frame["mean_r"]).all()


def test_the_old_api_plugin_project_is_unchanged_old_style():
    source = (Path(__file__).parents[1] / "fake_plugins" / "workbench-oldapi" / "workbench_oldapi" /
              "__init__.py").read_text()
    assert "brain_workbench" not in source and "from workbench.sweep.runner import load_cell_scores" in source
