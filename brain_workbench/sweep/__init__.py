"""Alignment sweeps: config (YAML + overrides), cells, planning and coordination, executors, tables."""

from brain_workbench.sweep.config import SweepConfig, load_config
from brain_workbench.sweep.results import load_results
from brain_workbench.sweep.runner import Plan, Reporter, Sweep
from brain_workbench.sweep.tables import export_table, load_cell_scores, results_table, summary_table, tidy_table

__all__ = ["Plan", "Reporter", "Sweep", "SweepConfig", "export_table", "load_cell_scores", "load_config",
           "results_table", "summary_table", "tidy_table"]
__all__ += ["load_results"]
