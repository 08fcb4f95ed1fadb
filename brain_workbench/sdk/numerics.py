"""Numerics heads and metrics share: ridge solvers, scores, statistics, functional alignment, adaptation.

Importing this module imports scipy, so plugins import it inside the methods that need it.
"""

from __future__ import annotations

from brain_workbench.analysis.adaptation import adaptation_curve, averaged_rows, decode_scores, session_order
from brain_workbench.numerics.alignment import ProcrustesMap, hyperalign, procrustes
from brain_workbench.numerics.ceilings import noise_ceiling_nsd, rdm_noise_ceiling
from brain_workbench.numerics.ridge import (
    DEFAULT_ALPHAS,
    banded_ridge_cv,
    bands_from_columns,
    make_folds,
    ridge_cv,
    ridge_fit,
)
from brain_workbench.numerics.ridge_predict import ridge_cv_predict
from brain_workbench.numerics.scoring import (
    pearson_per_output,
    pearson_per_unit,
    r2_per_unit,
    retrieval_topk,
    two_way_identification,
)
from brain_workbench.numerics.stats import CONSTANT_RTOL, rankdata, relative_spread

__all__ = [
    "CONSTANT_RTOL", "relative_spread",
    "DEFAULT_ALPHAS", "ProcrustesMap", "adaptation_curve", "averaged_rows", "banded_ridge_cv", "bands_from_columns",
    "decode_scores", "hyperalign", "make_folds", "noise_ceiling_nsd", "pearson_per_output", "pearson_per_unit",
    "procrustes", "r2_per_unit", "rankdata", "rdm_noise_ceiling", "retrieval_topk", "ridge_cv", "ridge_cv_predict",
    "ridge_fit", "session_order", "two_way_identification",
]
