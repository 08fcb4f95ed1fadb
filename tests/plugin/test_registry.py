"""Plugin discovery through entry points: a real third-party plugin, broken ones, clashes, disabling."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import brain_workbench as wb
from brain_workbench import cli
from brain_workbench.cli import app
from brain_workbench.plugin.options import Option
from brain_workbench.plugin.registry import DISABLE_ENV, Registry, get_registry
from brain_workbench.plugin.testing import check_dataset, check_encoder, check_head, check_metric
from brain_workbench.types import WorkbenchError

runner = CliRunner()
FAKE_PLUGINS = Path(__file__).resolve().parents[1] / "fake_plugins"


def _by_name(listing: list[dict]) -> dict[str, dict]:
    return {p["name"]: p for p in listing}


def _assert_test_plugins(plugins: dict[str, dict]) -> None:
    fake = plugins["fake"]
    assert fake["status"] == "ok" and fake["error"] is None
    assert fake["source"] == "brain-workbench-fakeplugin" and fake["version"] == "0.3.1"
    assert fake["module"] == "brain_workbench_fakeplugin"
    assert fake["provides"] == {"dataset": ["fake-data"], "encoder": ["fake-encoder"],
                                "head": ["fake-ridge"], "metric": ["fake-cka"]}
    broken = plugins["broken-import"]
    assert broken["status"] == "broken" and broken["source"] == "brain-workbench-brokenplugin"
    assert "ImportError" in broken["error"] and "definitely-not-installed" in broken["error"]
    bad = plugins["bad-hook"]
    assert bad["status"] == "broken" and bad["provides"] == {}
    assert "register_encoders failed: RuntimeError: cannot reach the model zoo" in bad["error"]


def test_plugins_list_json_in_process(with_plugins: Registry) -> None:
    result = runner.invoke(app, ["plugins", "list", "--json"])
    assert result.exit_code == 0, result.output
    plugins = _by_name(json.loads(result.stdout))
    _assert_test_plugins(plugins)
    assert all(p["status"] == "disabled" for p in plugins.values() if p["source"] == "brain-workbench")


def test_plugins_list_json_subprocess_beside_builtins(plugin_site: Path, run_cli) -> None:
    """The console script finds the installed plugins; whatever built-ins exist, ours keep working."""
    proc = run_cli("plugins", "list", "--json", paths=(plugin_site,), env={DISABLE_ENV: ""})
    assert proc.returncode == 0, proc.stderr
    plugins = _by_name(json.loads(proc.stdout))
    _assert_test_plugins(plugins)
    assert all(p["status"] in ("ok", "broken") for p in plugins.values())
    builtins = [p["name"] for p in plugins.values() if p["source"] == "brain-workbench"]
    assert [p["name"] for p in json.loads(proc.stdout)][: len(builtins)] == builtins, "built-ins are listed first"


def test_plugins_list_table_shows_errors_verbatim(with_plugins: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.console, "width", 400)
    result = runner.invoke(app, ["plugins", "list"])
    assert result.exit_code == 0, result.output
    assert "brain-workbench-fakeplugin 0.3.1" in result.stdout and "broken" in result.stdout
    assert "model zoo [offline]" in result.stdout, "rich markup in an error must not be swallowed"


def test_fake_plugin_kinds_pass_conformance_beside_broken_plugins(with_plugins: Registry) -> None:
    assert {p.status for p in with_plugins.plugins.values()} >= {"ok", "broken"}
    check_dataset(wb.dataset("fake-data", n_units=6), subjects=["s1", "s2"])
    check_encoder(wb.encoder("fake-encoder", width=8))
    check_head(wb.head("fake-ridge", alpha=0.1))
    check_metric(wb.metric("fake-cka"))
    layers = wb.encoder("fake-encoder", n_layers=4).layers()
    assert [layer.depth for layer in layers] == pytest.approx([0, 1 / 3, 2 / 3, 1])


def test_failed_hook_rolls_back_its_registrations(with_plugins: Registry) -> None:
    with pytest.raises(WorkbenchError) as err:
        wb.dataset("badhook-data")
    message = str(err.value)
    assert "unknown dataset 'badhook-data'" in message and "fake-data" in message
    assert "broken plugins: bad-hook, broken-import" in message


def test_unknown_names_list_known_ones(with_plugins: Registry) -> None:
    for kind, make, known in (("encoder", wb.encoder, "fake-encoder"), ("head", wb.head, "fake-ridge"),
                              ("metric", wb.metric, "fake-cka"), ("dataset", wb.dataset, "fake-data")):
        with pytest.raises(WorkbenchError, match=f"unknown {kind} 'nope'; known {kind}s: .*{known}"):
            make("nope")
    with pytest.raises(WorkbenchError, match="unknown plugin kind 'model'"):
        get_registry().get("model", "x")


def test_unknown_options_are_refused(with_plugins: Registry) -> None:
    with pytest.raises(WorkbenchError, match=r"encoder 'fake-encoder' has no option 'widht' \(did you mean 'width'\?\); "
                                             r"its options are: width, n_layers"):
        wb.encoder("fake-encoder", widht=3)
    with pytest.raises(WorkbenchError,
                       match=r"head 'fake-ridge' has no option 'alphas' \(did you mean 'alpha'\?\); its options are: alpha"):
        wb.head("fake-ridge", alphas=[1.0])
    with pytest.raises(WorkbenchError, match="metric 'fake-cka' has no option 'debiased'; its options are: none"):
        wb.metric("fake-cka", debiased=True)


def test_option_schema_applies_to_keyword_factories(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "brain-workbench")
    seen = {}

    def kw(a: Annotated[int, Option("first")] = 0, b: Annotated[str, Option("second")] = "") -> dict:
        seen.update(a=a, b=b)
        return {"a": a}

    wb.register("kw", kw, kind="metric")
    assert wb.metric("kw", a=1) == {"a": 1}
    assert wb.metric("kw", a="2") == {"a": 2}, "scalar options are coerced to their declared type"
    with pytest.raises(WorkbenchError, match="has no option 'c'; its options are: a, b"):
        wb.metric("kw", c=1)
    with pytest.raises(WorkbenchError, match=r"option a='x' does not fit type int"):
        wb.metric("kw", a="x")
    with pytest.warns(DeprecationWarning, match=r"register\(options=...\) is the previous release's card"):
        wb.register("old-style", kw, kind="metric", options={"a": "first"}, replace=True)
    with pytest.warns(DeprecationWarning, match="card key 'modality' is the previous release's"):
        wb.register("old-style", kw, kind="metric", modality="image", replace=True)
    with pytest.raises(WorkbenchError, match="'kind' is not a card key"):
        get_registry()._add("metric", "old-style", kw, "runtime", {"kind": "similarity"})
    wb.register("free", lambda **kw: kw, kind="metric")
    assert wb.metric("free", anything=2) == {"anything": 2}


def _fake_dist(tmp_path: Path, name: str, entry_points: dict[str, str]) -> metadata.Distribution:
    """A distribution that exists only for this test (not on sys.path): its metadata and entry points."""
    info = tmp_path / f"{name.replace('-', '_')}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(
        "[workbench]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return metadata.PathDistribution(info)


def test_duplicate_name_between_plugins_names_both(plugin_site: Path, dup_site: Path, fresh_registry: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.syspath_prepend(str(dup_site))
    monkeypatch.setenv(DISABLE_ENV, "brain-workbench")
    reg = get_registry()
    assert reg.plugins["dup"].status == "ok", "third-party plugins load in name order: dup before fake"
    fake = reg.plugins["fake"]
    assert fake.status == "broken" and fake.source == "brain-workbench-fakeplugin"
    assert "duplicate encoder name 'fake-encoder'" in fake.error
    assert "plugin 'dup'" in fake.error and "plugin 'fake'" in fake.error
    with pytest.raises(WorkbenchError, match=r"encoder 'fake-encoder' is registered by more than one plugin \(dup, fake\)"):
        wb.encoder("fake-encoder")
    with pytest.raises(WorkbenchError, match="unknown dataset 'fake-data'"):
        wb.dataset("fake-data")
    result = runner.invoke(app, ["plugins", "list", "--json"])
    assert "duplicate encoder name" in _by_name(json.loads(result.stdout))["fake"]["error"]

    monkeypatch.setenv(DISABLE_ENV, "brain-workbench,brain_workbench_dupplugin")
    wb.reset_registry()
    assert get_registry().plugins["dup"].status == "disabled"
    check_encoder(wb.encoder("fake-encoder"))


def test_duplicate_name_with_builtin_loses_to_the_builtin(tmp_path: Path, plugin_site: Path, dup_site: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.syspath_prepend(str(dup_site))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    builtin = _fake_dist(tmp_path, "brain-workbench", {"zz-builtin": "brain_workbench_fakeplugin"})
    third_party = metadata.distribution("brain-workbench-dupplugin")
    reg = Registry()
    reg.load_entry_points([*third_party.entry_points, *builtin.entry_points])
    assert list(reg.plugins) == ["zz-builtin", "dup"], "built-ins load first, whatever their names"
    assert reg.plugins["zz-builtin"].status == "ok"
    error = reg.plugins["dup"].error
    assert reg.plugins["dup"].status == "broken"
    assert "'zz-builtin'" in error and "'dup'" in error and "built-in stays in use" in error
    assert reg.get("encoder", "fake-encoder").plugin == "zz-builtin", "the built-in stays usable"


def test_same_plugin_name_in_two_distributions(tmp_path: Path, plugin_site: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    imposter = _fake_dist(tmp_path, "workbench-imposter", {"fake": "brain_workbench_fakeplugin"})
    reg = Registry()
    reg.load_entry_points([*metadata.distribution("brain-workbench-fakeplugin").entry_points, *imposter.entry_points])
    assert reg.plugins["fake"].status == "ok"
    clash = reg.plugins["fake (workbench-imposter)"]
    assert clash.status == "broken"
    assert "plugin name 'fake' is used by brain-workbench-fakeplugin and by workbench-imposter" in clash.error


@pytest.mark.parametrize("value", ["fake", "brain-workbench-fakeplugin", " Brain_Workbench_FakePlugin ,other"])
def test_disable_plugins_by_name_or_distribution(value: str, plugin_site: Path, fresh_registry: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setenv(DISABLE_ENV, f"brain-workbench,{value}")
    reg = get_registry()
    assert reg.plugins["fake"].status == "disabled"
    assert reg.plugins["broken-import"].status == "broken"
    with pytest.raises(WorkbenchError, match=r"unknown encoder 'fake-encoder'.*disabled plugins: .*fake"):
        wb.encoder("fake-encoder")


def test_runtime_register(with_plugins: Registry) -> None:
    class Const:
        kind, invariances, cross_validated = "similarity", (), False

        def __init__(self, value: float = 1.0) -> None:
            self.value = value

        def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
            return self.value

    entry = wb.register("const", Const, kind="metric", description="always the same")
    assert entry.plugin == "runtime" and wb.metric("const", value=2.0).compare(None, None) == 2.0
    wb.register("const", Const, kind="metric")  # re-running a notebook cell replaces its own entry
    assert get_registry().plugins["runtime"].provides == {"metric": ["const"]}
    assert "const" in get_registry().names("metric")

    class Other(Const):
        pass

    with pytest.raises(WorkbenchError, match="plugin 'fake' already registers it; .*replace=True"):
        wb.register("fake-cka", Other, kind="metric")
    check_metric(wb.metric("fake-cka"))  # a refused runtime registration leaves the plugin's entry usable
    wb.register("fake-cka", Other, kind="metric", replace=True)
    assert isinstance(wb.metric("fake-cka"), Other)

    with pytest.raises(WorkbenchError, match="unknown plugin kind 'model'"):
        wb.register("x", Const, kind="model")
    with pytest.raises(WorkbenchError, match="invalid metric name 'a b'"):
        wb.register("a b", Const, kind="metric")
    with pytest.raises(WorkbenchError, match="factory must be callable"):
        wb.register("y", 3, kind="metric")


def test_a_plugin_name_lives_once(with_plugins: Registry) -> None:
    class Histo:
        name, kind, invariances, cross_validated = "histo", "similarity", (), False

        def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
            return 1.0

    with pytest.raises(WorkbenchError, match=r"^metric 'colour-hist': class Histo declares name = 'histo'; register "
                                             r"it as 'histo' or drop its name attribute, so the name lives in one place$"):
        wb.register("colour-hist", Histo, kind="metric")
    assert "colour-hist" not in get_registry().names("metric")
    wb.register("histo", Histo, kind="metric")
    assert wb.metric("histo").name == "histo"

    class Nameless(Histo):  # a subclass registered under its own name gets that name, its base keeps its own
        pass

    wb.register("nameless", Nameless, kind="metric")
    assert (Nameless.name, Histo.name, wb.metric("nameless").name) == ("nameless", "histo", "nameless")
    with pytest.raises(WorkbenchError, match="class Nameless declares name = 'nameless'; register it as 'nameless'"):
        wb.register("renamed", Nameless, kind="metric")


def test_a_lazy_factory_s_name_is_checked_when_it_loads(with_plugins: Registry, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lazy_named.py").write_text("class Histo:\n    name = 'histo'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    wb.register("colour-hist", "lazy_named:Histo", kind="metric")
    with pytest.raises(WorkbenchError, match="class Histo declares name = 'histo'"):
        wb.metric("colour-hist")


def test_invalid_plugin_objects_are_broken_not_fatal(fresh_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DISABLE_ENV, "brain-workbench")
    reg = get_registry()

    class Typo:
        @wb.hookimpl
        def register_encoder(self, register):  # misspelt hook name
            register("never", dict)

    class NoArgs:
        @wb.hookimpl
        def register_heads(self):
            pass

    assert reg.add_plugin(Typo(), name="typo").status == "broken"
    assert "invalid plugin" in reg.plugins["typo"].error and "register_encoder" in reg.plugins["typo"].error
    assert reg.add_plugin(NoArgs(), name="noargs").status == "ok"
    with pytest.raises(WorkbenchError, match="already loaded"):
        reg.add_plugin(NoArgs(), name="noargs")


def test_plugin_commands_are_added_once(with_plugins: Registry) -> None:
    sub = typer.Typer()

    @sub.command("noop")
    def noop() -> None:
        """Nothing."""

    with_plugins.add_commands(sub)
    with_plugins.add_commands(sub)
    assert [c.name for c in sub.registered_commands].count("fake-hello") == 1
    result = runner.invoke(sub, ["fake-hello", "--name", "lab"])
    assert result.exit_code == 0 and "hello lab from brain-workbench-fakeplugin" in result.stdout


def test_plugin_command_through_main(with_plugins: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["fake-hello", "--name", "cli"])
    assert exit_.value.code in (0, None)
    assert "hello cli from brain-workbench-fakeplugin" in capsys.readouterr().out


def test_fake_plugin_installs_with_pip(tmp_path: Path, plugin_site: Path) -> None:
    """pip builds the fake plugin's pyproject into the same metadata the fixtures write by hand."""
    source = shutil.copytree(FAKE_PLUGINS / "brain-workbench-fakeplugin", tmp_path / "src",
                             ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    target = tmp_path / "target"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--disable-pip-version-check", "--target", str(target), str(source)],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        pytest.skip(f"pip cannot build offline here: {proc.stderr.strip().splitlines()[-1:]}")
    by_pip = metadata.Distribution.at(next(target.glob("brain_workbench_fakeplugin-*.dist-info")))
    by_hand = metadata.Distribution.at(next(plugin_site.glob("brain_workbench_fakeplugin-*.dist-info")))
    assert (by_pip.metadata["Name"], by_pip.version) == (by_hand.metadata["Name"], by_hand.version)
    assert sorted((e.group, e.name, e.value) for e in by_pip.entry_points) == \
        sorted((e.group, e.name, e.value) for e in by_hand.entry_points)
    assert (target / "brain_workbench_fakeplugin" / "__init__.py").read_text() == \
        (plugin_site / "brain_workbench_fakeplugin" / "__init__.py").read_text()
