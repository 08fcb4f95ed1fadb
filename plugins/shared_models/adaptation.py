"""The new-subject adaptation experiment (its logic is core, :mod:`brain_workbench.analysis.adaptation`, so sweeps run it too)."""

from __future__ import annotations

from brain_workbench.sdk.numerics import adaptation_curve, averaged_rows, session_order

__all__ = ["adaptation_curve", "averaged_rows", "session_order"]
