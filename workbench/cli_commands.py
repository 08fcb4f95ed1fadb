"""Commands that drive the pipeline (extract, sweep, results, figures, demo, plugin scaffolding)."""

from __future__ import annotations

from workbench.cli import app  # noqa: F401
