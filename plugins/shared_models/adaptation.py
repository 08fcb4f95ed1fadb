"""The new-subject adaptation experiment (its logic is core, :mod:`workbench.adaptation`, so sweeps run it too)."""

from __future__ import annotations

from workbench.sdk import adaptation_curve, averaged_rows, session_order

__all__ = ["adaptation_curve", "averaged_rows", "session_order"]
