"""Ridge encoding heads (registration only; the estimators live in :mod:`brain_workbench_plugins.ridge.heads`).

Registering names the classes as ``"module:Class"``, so listing plugins never imports scikit-learn.
"""

from __future__ import annotations

from typing import Any

from brain_workbench.sdk import hookimpl

CITATION_RIDGE = ("Dupré la Tour, Eickenberg, Nunez-Elizalde & Gallant (2022). Feature-space selection with "
                  "banded ridge regression. NeuroImage 264:119728 (himalaya).")


@hookimpl
def register_heads(register: Any) -> None:
    register("ridge", "brain_workbench_plugins.ridge.heads:RidgeHead", citation=CITATION_RIDGE,
             description="Ridge per unit: alpha chosen by K-fold CV (test MSE), one eigh per fold; "
                         "Gram or kernel form; numpy or torch; score = Pearson r per unit")
    register("banded-ridge", "brain_workbench_plugins.ridge.heads:BandedRidgeHead", citation=CITATION_RIDGE,
             description="Banded ridge over several feature spaces: per-unit band weights and alpha by CV "
                         "(himalaya random search or an explicit grid)")
