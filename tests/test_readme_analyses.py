"""Every YAML block of the README's "Analyses" section is a sweep config the loader accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from brain_workbench.sweep.config import load_config

README = Path(__file__).resolve().parents[1] / "README.md"


def analyses_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("\n## Analyses\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)


def test_the_section_has_one_example_per_scheme():
    blocks = analyses_blocks()
    for needle in ("scheme: split", "scheme: kfold", "scheme: group", "inner_group:", "as_rdms: true",
                   "scheme: all"):
        assert any(needle in b for b in blocks), f"no README Analyses example with {needle!r}"


@pytest.mark.parametrize("index", range(len(analyses_blocks())))
def test_each_example_loads(tmp_path, index):
    path = tmp_path / "config.yaml"
    path.write_text(analyses_blocks()[index])
    cfg = load_config(path)
    assert cfg.name and cfg.encoders
