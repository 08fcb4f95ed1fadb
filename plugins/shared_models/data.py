"""Validated multi-subject input: ``{subject: (A, B)}`` or ``{subject: (A, B, stimulus_ids)}``.

For decoders A is the brain (trials × units) and B the target embedding (trials × dims); for
encoders A is the stimulus features and B the brain. Rows of A and B are the same stimuli.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.sdk import WorkbenchError, as_str_array, digest

SINGLE = "0"  # the subject name used when a model is fitted scikit-learn style, fit(X, Y)


@dataclass
class Pair:
    """One subject's paired rows."""

    a: np.ndarray
    b: np.ndarray
    ids: np.ndarray | None = None


def refuse_sparse(what: str, a: Any) -> None:
    """A scipy sparse matrix or array (a DOK one is even a Mapping) is refused with one sentence."""
    if hasattr(a, "tocsr") and hasattr(a, "nnz"):
        raise TypeError(f"{what}: a sparse matrix was passed, but dense data is required; use .toarray()")


def dense_rows(what: str, a: Any, columns: bool = False) -> np.ndarray:
    """``a`` as a finite 2-D float64 array (a 1-D ``a`` as one column when ``columns``); sparse, complex, empty
    or non-finite input is refused with a ``ValueError``."""
    refuse_sparse(what, a)
    arr = np.asarray(a)
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported ({what})")
    arr = arr.astype(np.float64)
    if columns and arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows × columns), got shape {arr.shape}; Reshape your data with "
                         "array.reshape(-1, 1) for one column or array.reshape(1, -1) for one row")
    if arr.shape[1] == 0:
        raise ValueError(f"{what}: found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} holds NaN or infinite values; drop or impute them first")
    return arr


def width_error(model: Any, n: int, expected: int) -> ValueError:
    """scikit-learn's sentence for input of the wrong width."""
    return ValueError(f"X has {n} features, but {type(model).__name__} is expecting {expected} features as input")


def check_pair(subject: str, a: Any, b: Any, ids: Any = None, what: tuple[str, str] = ("A", "B")) -> Pair:
    """Finite 2-D float arrays with matching rows (and one stimulus id per row when given); a 1-D ``b`` is one
    column."""
    A = dense_rows(f"subject {subject}: {what[0]}", a)
    B = dense_rows(f"subject {subject}: {what[1]}", b, columns=True)
    if A.shape[0] != B.shape[0]:
        raise WorkbenchError(f"subject {subject}: {what[0]} has {A.shape[0]} rows but {what[1]} has {B.shape[0]}; "
                             "rows must be the same stimuli")
    if A.shape[0] < 3:
        raise WorkbenchError(f"subject {subject} has {A.shape[0]} sample(s) (rows); a multi-subject model needs "
                             "at least 3")
    stim = None
    if ids is not None:
        stim = as_str_array(ids)
        if stim.shape != (A.shape[0],):
            raise WorkbenchError(f"subject {subject}: {stim.size} stimulus ids for {A.shape[0]} rows")
    return Pair(A, B, stim)


def parse_subjects(data: Any, y: Any = None, what: tuple[str, str] = ("A", "B")) -> dict[str, Pair]:
    """``{subject: Pair}`` from a mapping of tuples, or one subject from scikit-learn's ``(X, y)``."""
    refuse_sparse(what[0], data)
    if not isinstance(data, Mapping):
        if y is None:
            raise WorkbenchError("fit takes {subject: (A, B)} or scikit-learn's fit(X, Y)")
        return {SINGLE: check_pair(SINGLE, data, y, what=what)}
    if not data:
        raise WorkbenchError("fit got no subjects; pass {subject: (A, B), ...}")
    out = {}
    for subject, value in data.items():
        if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
            raise WorkbenchError(f"subject {subject}: pass a tuple ({what[0]}, {what[1]}) or "
                                 f"({what[0]}, {what[1]}, stimulus_ids)")
        out[str(subject)] = check_pair(str(subject), *value, what=what)
    widths = {p.b.shape[1] if what[0] == "brain" else p.a.shape[1] for p in out.values()}
    if len(widths) > 1:
        side = what[1] if what[0] == "brain" else what[0]
        raise WorkbenchError(f"every subject's {side} must have the same columns; got widths {sorted(widths)}")
    return out


def standardiser(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales (standard deviation, constant columns scaled by 1)."""
    mean = A.mean(axis=0)
    sd = A.std(axis=0)
    return mean, np.where(sd > 1e-8, sd, 1.0)


def folds_for(cv: Any, n: int) -> Any:
    """An int ``cv`` capped at the number of rows (leave-one-out for tiny adaptation sets)."""
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool):
        if n < 2:
            raise WorkbenchError(f"cross-validating ridge needs at least 2 stimuli, got {n}")
        return int(min(cv, n))
    return cv


def data_digest(subjects: Mapping[str, Pair]) -> str:
    return digest(*[part for s, p in sorted(subjects.items()) for part in (s, p.a.astype(np.float32),
                                                                           p.b.astype(np.float32))])
