"""Alignment sweeps: config (YAML + overrides), planner/runner (idempotent cells), executors."""

from workbench.sweep.config import SweepConfig, load_config
from workbench.sweep.runner import Reporter, Sweep, results_table

__all__ = ["Reporter", "Sweep", "SweepConfig", "load_config", "results_table"]
