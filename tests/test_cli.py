"""The command line: version, help of every core group, JSON listings, one-line errors and --debug."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner, Result

import brain_workbench as wb
from brain_workbench.cli import app, main
from brain_workbench.plugin.registry import DISABLE_ENV, Registry
from brain_workbench.store import ArraySpec, Store

runner = CliRunner()
GROUPS = {
    "plugins": "Installed plugins and their health.",
    "store": "Inspect, check and clean the zarr store.",
    "data": "Download datasets",
    "datasets": "Registered datasets.",
    "encoders": "Registered encoders.",
    "heads": "Registered heads.",
    "metrics": "Registered metrics.",
}


def _invoke(*args: str) -> Result:
    return runner.invoke(app, list(args))


def test_version() -> None:
    result = _invoke("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"brain-workbench {wb.__version__}"


def test_root_help_lists_core_groups() -> None:
    result = _invoke("--help")
    assert result.exit_code == 0 and "Compare any model representation with any brain recording" in result.stdout
    for group in GROUPS:
        assert group in result.stdout
    assert "--debug" in result.stdout and "--version" in result.stdout


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_every_core_group_and_command_has_help(group: str) -> None:
    result = _invoke(group, "--help")
    assert result.exit_code == 0, result.output
    assert GROUPS[group] in " ".join(result.stdout.split())
    click_group = typer.main.get_command(app).commands[group]  # type: ignore[attr-defined]
    assert click_group.commands, f"{group} has no commands"
    for name, command in click_group.commands.items():
        assert (command.help or "").strip(), f"`workbench {group} {name}` has no help text"
        sub = _invoke(group, name, "--help")
        assert sub.exit_code == 0 and "Usage" in sub.stdout and command.help.split()[0] in sub.stdout


def test_group_without_command_shows_help() -> None:
    result = _invoke("store")
    assert "Usage" in result.output and "verify" in result.output


def test_listings_as_json(with_plugins: Registry) -> None:
    for group, name in (("datasets", "fake-data"), ("encoders", "fake-encoder"), ("heads", "fake-ridge"),
                        ("metrics", "fake-cka")):
        result = _invoke(group, "list", "--json")
        assert result.exit_code == 0, result.output
        listing = json.loads(result.stdout)
        entry = next(e for e in listing if e["name"] == name)
        assert entry["plugin"] == "fake" and entry["plugin_kind"] == group[:-1] and entry["description"]
    plugins = json.loads(_invoke("plugins", "list", "--json").stdout)
    assert {p["name"] for p in plugins} >= {"fake", "broken-import", "bad-hook"}


def test_info_as_json(with_plugins: Registry) -> None:
    enc = json.loads(_invoke("encoders", "info", "fake-encoder", "-o", "n_layers=5", "--json").stdout)
    assert [layer["depth"] for layer in enc["layers"]] == [0.0, 0.25, 0.5, 0.75, 1.0] and "fingerprint" not in enc
    enc = json.loads(_invoke("encoders", "info", "fake-encoder", "-o", "n_layers=5", "--fingerprint", "--json").stdout)
    assert enc["fingerprint"] == wb.encoder("fake-encoder", n_layers=5).fingerprint()
    ds = json.loads(_invoke("datasets", "info", "fake-data", "--json").stdout)
    assert ds["subjects"] == ["s1", "s2"] and ds["modalities"] == ["text"]
    metric = json.loads(_invoke("metrics", "info", "fake-cka", "--json").stdout)
    assert metric["kind"] == "similarity" and metric["plugin_kind"] == "metric" and metric["plugin"] == "fake"
    text = _invoke("encoders", "info", "fake-encoder")
    assert text.exit_code == 0 and "layer2" in text.stdout and "depth 1.0" in text.stdout


def test_store_listings_as_json(tmp_store: Store) -> None:
    with tmp_store.writer("features/e/l", {"x": ArraySpec((3, 2), "float32")}, kind="features") as w:
        w.write_block(0, {"x": np.ones((3, 2))})
        w.finish()
    with tmp_store.writer("features/e/partial", {"x": ArraySpec((3, 2), "float32")}, kind="features"):
        pass
    listing = json.loads(_invoke("store", "ls", "--store", tmp_store.url, "--json").stdout)
    assert [(e["path"], e["complete"]) for e in listing] == [("features/e/l", True), ("features/e/partial", False)]
    assert json.loads(_invoke("store", "ls", "features/e/l", "--store", tmp_store.url, "--json").stdout)[0]["n_blocks"] == 1
    verify = _invoke("store", "verify", "--store", tmp_store.url, "--json")
    assert verify.exit_code == 1 and json.loads(verify.stdout) == [
        {"path": "features/e/partial", "status": "incomplete", "detail": "0/1 blocks written"}]
    dry = _invoke("store", "gc", "--store", tmp_store.url, "--dry-run")
    assert "would remove features/e/partial" in dry.stdout and len(tmp_store.ls()) == 2
    table = _invoke("store", "ls", "--store", tmp_store.url)
    assert table.exit_code == 0 and "incomplete" in table.stdout


def test_data_fetch(with_plugins: Registry, tmp_path: Path) -> None:
    result = _invoke("data", "fetch", "fake-data", "--dest", str(tmp_path / "d"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "sentences.txt").exists() and "ready" in result.stdout


# ---- errors through main() ------------------------------------------------------------------
def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exit_.value.code or 0), out, err


@pytest.mark.parametrize("args, message", [
    (("datasets", "info", "nope"), "error: unknown dataset 'nope'; known datasets: fake-data"),
    (("encoders", "info", "nope"), "error: unknown encoder 'nope'; known encoders: fake-encoder"),
    (("data", "fetch", "nope", "--dest", "x"), "error: unknown dataset 'nope'"),
    (("encoders", "info", "fake-encoder", "-o", "widht=3"), "error: encoder 'fake-encoder' has no option 'widht'"),
    (("encoders", "info", "fake-encoder", "-o", "width"), "error: option 'width' must look like KEY=VALUE"),
    (("encoders", "info", "[bold]x[/bold]"), "error: unknown encoder '[bold]x[/bold]'"),
    (("store", "ls", "--store", "/nonexistent/dir/s.zarr"), "error: there is no store at '/nonexistent/dir/s.zarr'"),
    (("store", "ls", "../up", "--store", "{store}"), "error: invalid store key '../up'"),
])
def test_input_errors_are_one_line(args: tuple[str, ...], message: str, with_plugins: Registry, tmp_store: Store,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main(capsys, *(a.format(store=tmp_store.url) for a in args))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err
    assert "Traceback" not in err


def test_unexpected_errors_are_one_line_unless_debug(with_plugins: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    def explode(**_: object) -> None:
        raise RuntimeError("the GPU caught fire")

    wb.register("explodes", explode, kind="dataset")
    code, _, err = _main(capsys, "datasets", "info", "explodes")
    assert code == 1 and err.strip() == ("error: RuntimeError: the GPU caught fire "
                                         "(rerun with --debug for the traceback)")
    with pytest.raises(RuntimeError, match="caught fire"):
        main(["--debug", "datasets", "info", "explodes"])


def test_console_script_errors(plugin_site: Path, run_cli) -> None:
    env = {DISABLE_ENV: "brain-workbench"}
    proc = run_cli("encoders", "info", "nope", paths=(plugin_site,), env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("error: unknown encoder 'nope'; known encoders: fake-encoder")
    assert "Traceback" not in proc.stderr

    debug = run_cli("--debug", "encoders", "info", "nope", paths=(plugin_site,), env=env)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr
    assert "WorkbenchError: unknown encoder 'nope'" in debug.stderr
