"""Functional alignment of subjects from responses to shared stimuli: Procrustes and hyperalignment.

Rows of every matrix are the same stimuli in the same order (``n_shared × units``); units may differ
in number across subjects. ``procrustes`` finds the orthogonal map R (``R = U Vᵀ`` from the SVD of
``sourceᵀ target``) minimising ``‖source R − target‖_F``: with as many stimuli as units and equal
widths it is ``scipy.linalg.orthogonal_procrustes``. With unequal widths, or fewer stimuli than
units, R is the partial isometry of that thin SVD (orthonormal on the span the stimuli reach, zero
elsewhere), kept as its two factors so that thousands of units never form a units × units matrix.

``hyperalign`` is the iterative Procrustes of Haxby et al. (2011), in PyMVPA's three-level form:
level 1 aligns subjects in order to the running mean of those already aligned (the first subject
is the starting template); level 2 (``n_iter`` passes) re-aligns every subject to the mean of the
*other* subjects' aligned responses; level 3 aligns every subject once more to the mean of all
level-2 aligned responses, which is the returned common template. The common space has the width
of the first subject.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from brain_workbench.types import WorkbenchError

__all__ = ["ProcrustesMap", "Hyperalignment", "procrustes", "hyperalign"]


@dataclass
class ProcrustesMap:
    """An orthogonal (or partially isometric) map ``x ↦ ((x − source_mean) U) Vᵀ · scale + target_mean``."""

    U: np.ndarray
    V: np.ndarray
    scale: float = 1.0
    source_mean: np.ndarray | float = 0.0
    target_mean: np.ndarray | float = 0.0

    @property
    def n_source(self) -> int:
        return int(self.U.shape[0])

    @property
    def n_target(self) -> int:
        return int(self.V.shape[0])

    @property
    def rotation(self) -> np.ndarray:
        """The full ``n_source × n_target`` matrix R (formed on demand; can be large)."""
        return self.U @ self.V.T

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Map rows of X (any stimuli, ``n × n_source``) into the target space."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_source:
            raise WorkbenchError(f"this alignment maps {self.n_source} units but the responses have shape {X.shape}; "
                                 "pass the subject's responses with the units it was fitted on")
        return ((X - self.source_mean) @ self.U) @ self.V.T * self.scale + self.target_mean


def _check_pair(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(source, dtype=np.float64)
    B = np.asarray(target, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2:
        raise WorkbenchError(f"Procrustes needs two 2-D arrays (shared stimuli × units), got {A.shape} and {B.shape}")
    if A.shape[0] != B.shape[0]:
        raise WorkbenchError(f"Procrustes needs the same shared stimuli in both subjects: {A.shape[0]} rows vs "
                             f"{B.shape[0]}; select the stimuli both saw, in the same order")
    if A.shape[0] < 2:
        raise WorkbenchError("Procrustes alignment needs responses to at least 2 shared stimuli")
    if not (np.isfinite(A).all() and np.isfinite(B).all()):
        raise WorkbenchError("Procrustes alignment got NaN or infinite responses; drop or impute those units first")
    return A, B


def _polar_factors(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, s, V of the thin SVD of ``Aᵀ B`` without forming it when both are wider than tall."""
    n, p, q = A.shape[0], A.shape[1], B.shape[1]
    if n >= min(p, q):
        U, s, Vt = np.linalg.svd(A.T @ B, full_matrices=False)
        return U, s, Vt.T
    Qa, Ra = np.linalg.qr(A.T)  # Aᵀ = Qa Ra, Qa: p × n
    Qb, Rb = np.linalg.qr(B.T)
    u, s, vt = np.linalg.svd(Ra @ Rb.T)
    return Qa @ u, s, Qb @ vt.T


def procrustes(source: np.ndarray, target: np.ndarray, center: bool = False, scale: bool = False,
               tol: float = 1e-10) -> ProcrustesMap:
    """Orthogonal map of ``source`` (n × p) onto ``target`` (n × q) from the same n stimuli.

    ``center`` removes each side's mean over the shared stimuli first (and adds the target's back);
    ``scale`` adds the least-squares global scale (Schönemann & Carroll 1970). Directions with a
    singular value below ``tol`` × the largest are dropped (they are not determined by the data).
    """
    A, B = _check_pair(source, target)
    mu_a = A.mean(axis=0) if center else 0.0
    mu_b = B.mean(axis=0) if center else 0.0
    A, B = A - mu_a, B - mu_b
    U, s, V = _polar_factors(A, B)
    if s.size and s[0] > 0:
        keep = s > tol * s[0]
        U, s, V = U[:, keep], s[keep], V[:, keep]
    factor = 1.0
    if scale:
        norm = float((A * A).sum())
        factor = float(s.sum() / norm) if norm > 0 else 1.0
    return ProcrustesMap(U=U, V=V, scale=factor, source_mean=mu_a, target_mean=mu_b)


@dataclass
class Hyperalignment:
    """Per-subject maps into a common space and the common template (shared stimuli × common units)."""

    maps: list[ProcrustesMap]
    template: np.ndarray
    history: list[float]

    def transform(self, index: int, X: np.ndarray) -> np.ndarray:
        return self.maps[index].transform(X)


def _mean_alignment_error(aligned: Sequence[np.ndarray], template: np.ndarray) -> float:
    norm = float((template * template).sum()) or 1.0
    return float(np.mean([((a - template) ** 2).sum() / norm for a in aligned]))


def hyperalign(responses: Sequence[np.ndarray], n_iter: int = 2, scale: bool = False) -> Hyperalignment:
    """Hyperalignment (Haxby et al. 2011) of subjects' responses to the same shared stimuli.

    ``responses[j]`` is subject j's ``n_shared × units_j`` matrix (rows in one stimulus order,
    columns best z-scored). Returns each subject's map into the common space (the width of subject
    0) and the template; ``history`` holds the mean relative squared distance of the aligned
    subjects to the template after level 1, each level-2 pass and level 3.
    """
    data = [np.asarray(r, dtype=np.float64) for r in responses]
    if len(data) < 2:
        raise WorkbenchError(f"hyperalignment needs at least 2 subjects, got {len(data)}")
    if n_iter < 0:
        raise WorkbenchError(f"hyperalignment n_iter must be 0 or more, got {n_iter}")
    for d in data[1:]:
        _check_pair(d, data[0])
    history: list[float] = []
    template = data[0].copy()
    aligned = [data[0].copy()]
    for j in range(1, len(data)):
        mapped = procrustes(data[j], template, scale=scale).transform(data[j])
        aligned.append(mapped)
        template = (template * j + mapped) / (j + 1)
    history.append(_mean_alignment_error(aligned, template))
    for _ in range(n_iter):
        total = np.sum(aligned, axis=0)
        new = []
        for j, d in enumerate(data):
            others = (total - aligned[j]) / (len(data) - 1)
            new.append(procrustes(d, others, scale=scale).transform(d))
        aligned = new
        history.append(_mean_alignment_error(aligned, np.mean(aligned, axis=0)))
    template = np.mean(aligned, axis=0)
    maps = [procrustes(d, template, scale=scale) for d in data]
    history.append(_mean_alignment_error([m.transform(d) for m, d in zip(maps, data)], template))
    return Hyperalignment(maps=maps, template=template, history=history)
