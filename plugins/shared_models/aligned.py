"""Functional-alignment baselines: align subjects on shared stimuli, then fit an ordinary head.

Each subject's units are z-scored (optionally reduced to ``n_components`` principal components of
its own responses), then mapped into a common space from its responses to the stimuli every
subject saw: ``method="procrustes"`` rotates each subject onto a reference subject
(:func:`brain_workbench.numerics.alignment.procrustes`), ``method="hyperalignment"`` onto the common template of
:func:`brain_workbench.numerics.alignment.hyperalign` (Haxby et al. 2011, PyMVPA's three levels). An ordinary
registered head (default ``decoder``, ridge) is then fitted on the pooled aligned responses of the
training subjects, so a new subject needs only its alignment: ``adapt`` fits its Procrustes map
onto the template from whichever shared stimuli it has seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from sklearn.base import BaseEstimator

from brain_workbench.sdk import Option, WorkbenchError, as_str_array, build_head
from brain_workbench.sdk.numerics import hyperalign, pearson_per_output, procrustes
from brain_workbench_plugins.shared_models.data import (
    SINGLE,
    Pair,
    dense_rows,
    parse_subjects,
    standardiser,
    width_error,
)
from brain_workbench_plugins.shared_models.decoder import decode_scores

METHODS = ("hyperalignment", "procrustes")


def _rows_by_id(pair: Pair, ids: Sequence[str]) -> np.ndarray:
    """Index of each id's first row in ``pair`` (ids are unique per subject after averaging)."""
    first = {}
    for i, s in enumerate(pair.ids):
        first.setdefault(s, i)
    return np.array([first[s] for s in ids], dtype=np.intp)


class AlignedDecoder(BaseEstimator):
    """Procrustes / hyperalignment into a common space, then one ordinary head on all subjects' data."""

    direction = "decode"

    def __init__(
        self,
        method: Annotated[Literal["hyperalignment", "procrustes"], Option(
            "hyperalignment (Haxby et al. 2011, iterative Procrustes to a common template) or Procrustes "
            "onto the reference")] = "hyperalignment",
        reference: Annotated[str | None, Option("reference subject (default: the first)")] = None,
        n_components: Annotated[int | None, Option("principal components per subject before aligning")] = None,
        n_iter: Annotated[int, Option("hyperalignment level-2 passes")] = 2,
        head: Annotated[str, Option("registered head fitted on the pooled aligned data")] = "decoder",
        head_options: Annotated[Mapping[str, Any] | None, Option("options of that head")] = None,
        align_ids: Annotated[Sequence[str] | None, Option(
            "alignment stimuli (default: those all subjects saw)")] = None,
    ) -> None:
        self.method = method
        self.reference = reference
        self.n_components = n_components
        self.n_iter = n_iter
        self.head = head
        self.head_options = head_options
        self.align_ids = align_ids

    def _reduce(self, Yz: np.ndarray) -> np.ndarray | None:
        if self.n_components is None:
            return None
        _, _, Vt = np.linalg.svd(Yz - Yz.mean(axis=0), full_matrices=False)
        return Vt[:int(self.n_components)].T

    def _space(self, subject: str, pair: Pair) -> None:
        y_mean, y_scale = standardiser(pair.a)
        self.stats_[subject] = (y_mean, y_scale, self._reduce((pair.a - y_mean) / y_scale))

    def _to_space(self, subject: str, Y: np.ndarray) -> np.ndarray:
        y_mean, y_scale, P = self.stats_[subject]
        Y = dense_rows(f"subject {subject}: responses", Y)
        if Y.shape[1] != y_mean.shape[0]:
            raise width_error(self, Y.shape[1], y_mean.shape[0])
        Z = (Y - y_mean) / y_scale
        return Z if P is None else Z @ P

    def fit(self, data: Any, y: Any = None) -> AlignedDecoder:
        """Align ``{subject: (Y_brain, X_target, stimulus_ids)}`` and fit the head on the pooled data.

        ``fit(Y, X)`` (one subject, scikit-learn style) is the subject's own space: no alignment.
        """
        if self.method not in METHODS:
            raise WorkbenchError(f"unknown alignment method {self.method!r}; use one of {', '.join(METHODS)}")
        subjects = parse_subjects(data, y, what=("brain", "target"))
        if not isinstance(data, Mapping):
            self.stats_ = {}
            self._space(SINGLE, subjects[SINGLE])
            self.maps_ = {SINGLE: None}
            self.subject_names_ = [SINGLE]
            self.n_features_in_ = subjects[SINGLE].a.shape[1]
            self.head_ = build_head(self.head, **dict(self.head_options or {})).fit(
                self._to_space(SINGLE, subjects[SINGLE].a), subjects[SINGLE].b)
            return self
        if len(subjects) < 2 or any(p.ids is None for p in subjects.values()):
            raise WorkbenchError("functional alignment needs at least 2 subjects, each given as "
                                 "(Y_brain, X_target, stimulus_ids)")
        names = list(subjects)
        reference = str(self.reference) if self.reference is not None else names[0]
        if reference not in subjects:
            raise WorkbenchError(f"reference subject {reference!r} is not among {', '.join(names)}")
        names = [reference] + [s for s in names if s != reference]
        seen = [set(subjects[s].ids) for s in names]
        shared = sorted(set.intersection(*seen)) if self.align_ids is None else list(as_str_array(self.align_ids))
        missing = [s for s, ids in zip(names, seen) if not set(shared) <= ids]
        if len(shared) < 2 or missing:
            raise WorkbenchError(f"functional alignment needs at least 2 stimuli seen by every subject; "
                                 f"{len(shared)} shared, subjects {missing} miss some of align_ids")
        self.stats_: dict[str, Any] = {}
        for s in names:
            self._space(s, subjects[s])
        blocks = [self._to_space(s, subjects[s].a)[_rows_by_id(subjects[s], shared)] for s in names]
        if self.method == "hyperalignment":
            result = hyperalign(blocks, n_iter=int(self.n_iter))
            maps, template = result.maps, result.template
            self.history_ = result.history
        else:
            maps = [procrustes(b, blocks[0]) for b in blocks]
            template = blocks[0]
        self.maps_ = dict(zip(names, maps))
        self.template_, self.template_ids_ = template, np.asarray(shared)
        aligned = np.concatenate([self.maps_[s].transform(self._to_space(s, subjects[s].a)) for s in names])
        targets = np.concatenate([subjects[s].b for s in names])
        self.head_ = build_head(self.head, **dict(self.head_options or {})).fit(aligned, targets)
        self.subject_names_ = names
        return self

    def adapt(self, subject: str, Y: np.ndarray, X: np.ndarray | None = None, stimulus_ids: Any = None) -> AlignedDecoder:
        """Align a new subject onto the template from its responses to shared stimuli (ids required)."""
        if not hasattr(self, "maps_"):
            raise WorkbenchError("fit the AlignedDecoder before adapting it to a new subject")
        if stimulus_ids is None:
            raise WorkbenchError("adapting by functional alignment needs the stimulus id of each row")
        target = np.zeros((len(Y), 1)) if X is None else X
        pair = parse_subjects({str(subject): (Y, target, stimulus_ids)}, what=("brain", "target"))[str(subject)]
        position = {s: i for i, s in enumerate(self.template_ids_)}
        common = [s for s in dict.fromkeys(pair.ids) if s in position]
        if len(common) < 2:
            raise WorkbenchError(f"subject {subject} saw {len(common)} of the {len(position)} shared alignment "
                                 "stimuli; Procrustes alignment needs at least 2")
        self._space(str(subject), pair)
        source = self._to_space(str(subject), pair.a)[_rows_by_id(pair, common)]
        self.maps_[str(subject)] = procrustes(source, self.template_[[position[s] for s in common]])
        return self

    def predict(self, subject: Any, Y: np.ndarray | None = None) -> np.ndarray:
        """Predicted targets of ``subject``'s responses (``predict(Y)`` after a single-subject fit)."""
        if Y is None:
            subject, Y = SINGLE, subject
        subject = str(subject)
        if not hasattr(self, "maps_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this AlignedDecoder is not fitted yet; call fit first")
        if subject not in self.maps_:
            known = ", ".join(getattr(self, "maps_", {})) or "none"
            raise WorkbenchError(f"subject {subject!r} is not aligned; known: {known} (fit, or adapt a new subject)")
        Z = self._to_space(subject, Y)
        mapping = self.maps_[subject]
        return np.asarray(self.head_.predict(Z if mapping is None else mapping.transform(Z)))

    def score_per_unit(self, subject: Any, Y: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
        """Pearson r per target dimension (``score(Y, X)`` after a single-subject fit)."""
        if X is None:
            subject, Y, X = SINGLE, subject, Y
        return pearson_per_output(dense_rows("targets", X, columns=True), self.predict(subject, Y))

    def score(self, subject: Any, Y: np.ndarray, X: np.ndarray | None = None) -> float:
        """Mean over units of ``score_per_unit``: one number, as scikit-learn's model selection needs."""
        return float(np.mean(self.score_per_unit(subject, Y, X)))

    def decode_scores(self, subject: str, Y: np.ndarray, X: np.ndarray, n_candidates: int | None = None,
                      metric: str = "cosine") -> dict[str, float]:
        return decode_scores(self.predict(subject, Y), np.asarray(X), n_candidates, metric)
