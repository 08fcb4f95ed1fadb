"""The shipped demo config plans every analysis it names (a dry run, no model weights touched)."""

from __future__ import annotations


def test_the_shipped_demo_config_plans_every_analysis(tmp_path):
    """`workbench demo`'s own config plans (a dry run on a one-subject demo): a section that names a layer or a
    head the sweep does not provide fails here, not after minutes of work."""
    from pathlib import Path

    import brain_workbench_configs
    from typer.testing import CliRunner

    from brain_workbench.cli import app

    config = Path(brain_workbench_configs.__file__).parent / "demo.yaml"
    result = CliRunner().invoke(app, ["sweep", "run", str(config), "--dry-run", "--set", f"store={tmp_path / 's.zarr'}",
                                      "--set", "dataset.options.n_subjects=1", "--set", "dataset.options.n_train=20",
                                      "--set", "dataset.options.n_test=10"])
    assert result.exit_code == 0, result.output
    for analysis in ("encoding", "metric", "decoding", "reconstruction", "concepts", "captions", "preferred",
                     "synthesis"):
        assert analysis in result.output, analysis
