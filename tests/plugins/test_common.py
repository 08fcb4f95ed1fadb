"""Every registered plugin of every kind against its kind's named checks, as scikit-learn's ``test_common.py``.

Each plugin is built with its default options, except where an option only shrinks the work (``SMALL``).
A plugin that cannot run offline says why in ``OFFLINE``; a check a plugin is known to fail is declared
in ``EXPECTED_FAILURES`` with the reason, and runs as an xfail.
"""

from __future__ import annotations

from typing import Any

import pytest

from brain_workbench.plugin.registry import get_registry
from brain_workbench.plugin.testing import KIND_CHECKS, parametrize_with_checks

SMALL: dict[tuple[str, str], dict[str, Any]] = {
    ("dataset", "demo"): {"n_train": 30, "n_test": 12},
    ("codec", "taef2"): {"image_size": 64, "device": "cpu"},
    ("dataset", "things-eeg2-sim"): {"n_train_concepts": 12, "images_per_concept": 2, "n_test": 10, "test_reps": 3},
    ("head", "eeg-tsconv"): {"epochs": 3, "width": 4, "batch_size": 32},
    ("head", "eeg-atms"): {"epochs": 3, "width": 4, "d_model": 8, "heads": 2, "batch_size": 32},
}
"""Options that only make the checks cheaper (the defaults simulate or encode far more than a check needs)."""

OFFLINE: dict[tuple[str, str], str] = {
    ("dataset", "nsd"): "reads the NSD release from local files; tests/plugins/test_nsd.py runs every dataset check "
                        "on a synthetic copy of its layout",
    ("dataset", "things-eeg2"): "reads the THINGS-EEG2 release from local files; tests/plugins/test_things_eeg2.py "
                                "runs every dataset check on a synthetic copy of its layout",
    ("encoder", "nice-clip"): "returns the embeddings that things-eeg2-sim stimuli carry, not features of arbitrary "
                              "images; tests/plugins/test_eeg_zeroshot_sim.py runs every encoder check on them",
}
"""Plugins whose checks cannot run offline, and where they are checked instead."""

EEG_LAYOUT = ("the EEG heads read channels × times; the check's 8 unstructured features become one channel of 8 "
              "samples pooled over time, which 3 epochs of contrastive (cosine) training do not fit to r > 0.8 per "
              "dimension; tests/plugins/test_eeg_heads.py checks learning on planted EEG-shaped data")
EXPECTED_FAILURES: dict[tuple[str, str], dict[str, str]] = {
    ("head", name): {"check_head_score_per_unit": EEG_LAYOUT, "check_head_score_uses_input": EEG_LAYOUT}
    for name in ("eeg-tsconv", "eeg-atms")}
"""(kind, name) → {check name: reason it fails}."""


def _plugins() -> tuple[list[Any], list[str], list[Any]]:
    registry = get_registry()
    built, labels, offline = [], [], []
    for kind in KIND_CHECKS:
        for name in registry.names(kind):
            if (kind, name) in OFFLINE:
                offline.append(pytest.param(kind, name, id=f"{kind}:{name}"))
                continue
            built.append(registry.create(kind, name, **SMALL.get((kind, name), {})))
            labels.append(f"{kind}:{name}")
    return built, labels, offline


BUILT, LABELS, UNAVAILABLE = _plugins()
KEYS = {id(plugin): tuple(label.split(":", 1)) for plugin, label in zip(BUILT, LABELS)}


@parametrize_with_checks(BUILT, expected_failed_checks=lambda p: EXPECTED_FAILURES.get(KEYS[id(p)], {}), ids=LABELS)
def test_plugin_passes_its_kind_s_checks(plugin: Any, check: Any) -> None:
    check(plugin)


@pytest.mark.parametrize("kind, name", UNAVAILABLE)
def test_plugins_that_need_local_files_say_so(kind: str, name: str) -> None:
    pytest.skip(OFFLINE[(kind, name)])


def test_declarations_name_registered_plugins() -> None:
    registry = get_registry()
    stale = sorted({*SMALL, *OFFLINE, *EXPECTED_FAILURES} - {(k, n) for k in KIND_CHECKS for n in registry.names(k)})
    assert not stale, f"declarations for plugins that are not registered: {stale}"
