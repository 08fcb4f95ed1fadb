"""Hostile configs are refused in one sentence before any Python object is built from them: YAML alias bombs
("billion laughs") in any free-form options dict, and documents nested beyond reason."""

from __future__ import annotations

import pytest

from brain_workbench.cli.common import parse_options
from brain_workbench.sweep.config import MAX_YAML_NODES, apply_overrides, expanded_size, load_config, read_yaml
from brain_workbench.types import WorkbenchError

LAUGHS = "\n".join(
    ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)])


def bomb_in(field: str) -> str:
    body = {"dataset": "dataset:\n  name: demo\n  options:\n    x: *a8\n",
            "heads": "heads:\n  - name: ridge\n    options:\n      alphas: *a8\n",
            "metrics": "metrics:\n  - name: rsa\n    options:\n      x: *a8\n"}[field]
    head = "" if field == "dataset" else "dataset:\n  name: demo\n"
    return "name: bomb\n" + "bombs:\n" + "\n".join("  " + line for line in LAUGHS.splitlines()) + "\n" + head + body


@pytest.mark.parametrize("field", ["dataset", "heads", "metrics"])
def test_an_alias_bomb_in_any_options_dict_is_refused_naming_the_file(tmp_path, field):
    path = tmp_path / f"{field}.yaml"
    path.write_text(bomb_in(field))
    with pytest.raises(WorkbenchError, match=rf"{path.name} expands to more than .* YAML nodes through its aliases"):
        load_config(path)


def test_expanded_size_counts_every_alias_use():
    import yaml

    root = yaml.compose("a: &x [1, 2, 3]\nb: [*x, *x]\n", Loader=yaml.SafeLoader)
    assert expanded_size(root) == 1 + 1 + 4 + 1 + (1 + 4 + 4)  # mapping, key a, list x, key b, list of two x's


def test_ordinary_aliases_still_work(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("name: ok\ndataset: {name: demo}\nencoders: [{name: efficientnet}]\n"
                    "heads:\n  - &r {name: ridge, options: {cv: 3}}\n  - {<<: *r, label: again}\n")
    config = load_config(path)
    assert [h.label or h.name for h in config.heads] == ["ridge", "again"]


def test_deep_nesting_is_refused_not_a_recursion_error():
    with pytest.raises(WorkbenchError, match="nests too deeply"):
        read_yaml("[" * 100_000 + "]" * 100_000, "deep.yaml")


def test_bombs_in_overrides_and_cli_options_are_refused():
    bomb = "{" + LAUGHS.replace("\n", ", ").replace("a0: ", "a0: ") + ", x: *a8}"
    assert expanded_size(__import__("yaml").compose(bomb, Loader=__import__("yaml").SafeLoader)) > MAX_YAML_NODES
    with pytest.raises(WorkbenchError, match="override 'heads=.*expands to more than"):
        apply_overrides({}, [f"heads={bomb}"])
    with pytest.raises(WorkbenchError, match="option 'alphas=.*expands to more than"):
        parse_options([f"alphas={bomb}"])


@pytest.mark.parametrize("name", ["results", "Manifest", ".hidden", "-rf", "demo.parquet", "x.zarr"])
def test_sweep_names_that_collide_with_the_store_layout_are_refused(name):
    from brain_workbench.sweep.config import config_from_dict

    with pytest.raises(WorkbenchError, match="field name: .*sweep name"):
        config_from_dict({"name": name, "dataset": {"name": "demo"}, "encoders": [{"name": "efficientnet"}]})


def test_a_windows_device_name_is_accepted_with_a_warning():
    from brain_workbench.sweep.config import config_from_dict

    with pytest.warns(UserWarning, match="reserved device name on Windows"):
        config = config_from_dict({"name": "CON", "dataset": {"name": "demo"}, "encoders": [{"name": "efficientnet"}]})
    assert config.name == "CON"
