"""The new-subject adaptation experiment: score against how many sessions of the new subject a model gets.

Multi-subject models (heads with ``adapt``) are fitted once on the training subjects, then adapted
to the held-out subject from its first k sessions only; ordinary per-subject heads are fitted from
scratch on the same rows. Every model is scored on the same held-out stimuli of the new subject
(its ``test_split`` minus the alignment stimuli), averaged over all their repetitions. The sweep's
``shared:`` cells (the built-in ``adaptation`` analysis) and :func:`adaptation_curve` both run it
through :func:`prepare_adaptation`, :func:`fit_model` and :func:`score_sessions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain_workbench.numerics.scoring import (
    pearson_per_output,
    pearson_per_unit,
    retrieval_topk,
    two_way_identification,
)
from brain_workbench.plugin.registry import get_registry
from brain_workbench.types import Recording, WorkbenchError, as_str_array


def decode_scores(pred: np.ndarray, true: np.ndarray, n_candidates: int | None = None,
                  metric: str = "cosine") -> dict[str, float]:
    """Retrieval top-1 among ``n_candidates``-way subsets, two-way identification and mean r per dimension."""
    return {"top1": retrieval_topk(pred, true, 1, n_candidates=n_candidates, metric=metric)[1],
            "two_way": two_way_identification(pred, true),
            "mean_r": float(np.mean(pearson_per_output(true, pred)))}


def session_order(recording: Recording, group: str = "session") -> list[str]:
    """The recording's session labels in the order they first occur in its trials (chronological)."""
    if group not in recording.trial_groups:
        raise WorkbenchError(f"{recording.dataset}/{recording.subject} has no trial group {group!r} "
                             f"(it has {', '.join(recording.trial_groups) or 'none'}); the dataset must label "
                             "each trial's session in Recording.trial_groups")
    return list(dict.fromkeys(recording.trial_groups[group].tolist()))


def averaged_rows(recording: Recording, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stimulus ids (sorted) and the mean response of the kept trials of each."""
    ids = recording.trial_stimulus_ids[keep]
    responses = np.asarray(recording.responses)[keep]
    if responses.ndim != 2:
        raise WorkbenchError("the adaptation experiment takes trials × units responses (average or select time "
                             "points of M/EEG first)")
    unique, inverse = np.unique(ids, return_inverse=True)
    sums = np.zeros((len(unique), responses.shape[1]))
    np.add.at(sums, inverse, responses.astype(np.float64))
    return unique, sums / np.bincount(inverse)[:, None]


def model_spec(spec: Mapping[str, Any] | str) -> dict[str, Any]:
    """``{"name", "options", "label"}`` of a registered head (a bare name is accepted)."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if "name" not in spec:
        raise WorkbenchError(f"a model spec needs a registered head 'name', got {spec}")
    spec["options"] = dict(spec.get("options") or {})
    spec["label"] = spec.get("label") or spec["name"]
    return spec


@dataclass
class Prepared:
    """Everything the models of one new subject are fitted and scored on."""

    new_subject: str
    train_data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # subject: (brain, targets, ids)
    order: list[str]
    labels: np.ndarray
    new: Recording
    pool: np.ndarray
    eval_brain: np.ndarray
    eval_targets: np.ndarray
    rows: Any


def prepare_adaptation(recordings: Mapping[str, Recording], stimulus_ids: Sequence[str], targets: np.ndarray,
                       new_subject: str, train_subjects: Sequence[str] | None = None, train_split: str = "train",
                       test_split: str = "test", align_fraction: float = 0.0, group: str = "session",
                       seed: int = 0) -> Prepared:
    """Training subjects' averaged rows, the new subject's evaluation rows and its adaptation pool."""
    new_subject = str(new_subject)
    if new_subject not in recordings:
        raise WorkbenchError(f"new subject {new_subject!r} has no recording; subjects: {', '.join(recordings)}")
    train_subjects = [str(s) for s in (train_subjects or [s for s in recordings if str(s) != new_subject])]
    if not train_subjects or new_subject in train_subjects:
        raise WorkbenchError("train_subjects must name at least one subject other than the new one")
    stim = as_str_array(stimulus_ids)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or len(targets) != len(stim):
        raise WorkbenchError(f"targets must be one row per stimulus id ({len(stim)}), got shape {targets.shape}")
    row_of = {s: i for i, s in enumerate(stim)}
    if not 0.0 <= align_fraction < 1.0:
        raise WorkbenchError(f"align_fraction must lie in [0, 1), got {align_fraction}")
    new = recordings[new_subject]
    for name, split in (("train_split", train_split), ("test_split", test_split)):
        if split not in new.splits:
            raise WorkbenchError(f"{name}={split!r} is not a split of subject {new_subject} "
                                 f"(splits: {', '.join(new.splits)})")
    test_ids = np.sort(new.splits[test_split])
    n_align = int(round(align_fraction * len(test_ids)))
    align_ids = np.sort(np.random.default_rng(seed).permutation(test_ids)[:n_align])
    eval_ids = np.setdiff1d(test_ids, align_ids)
    if len(eval_ids) < 2:
        raise WorkbenchError(f"only {len(eval_ids)} test stimuli are left to evaluate on; lower align_fraction")

    def rows(ids: np.ndarray) -> np.ndarray:
        missing = [s for s in ids if s not in row_of]
        if missing:
            raise WorkbenchError(f"{len(missing)} stimuli have no target row (first: {missing[0]!r}); "
                                 "pass targets for every stimulus the subjects saw")
        return targets[[row_of[s] for s in ids]]

    train_data = {}
    for s in train_subjects:
        rec = recordings[s]
        if train_split not in rec.splits:
            raise WorkbenchError(f"train_split={train_split!r} is not a split of subject {s}")
        use = np.isin(rec.trial_stimulus_ids, np.concatenate([rec.splits[train_split], align_ids]))
        ids, Y = averaged_rows(rec, use)
        train_data[s] = (Y, rows(ids), ids)
    eval_ids_, Y_eval = averaged_rows(new, np.isin(new.trial_stimulus_ids, eval_ids))
    return Prepared(new_subject, train_data, session_order(new, group), np.asarray(new.trial_groups[group]), new,
                    np.concatenate([new.splits[train_split], align_ids]), Y_eval, rows(eval_ids_), rows)


def fit_model(spec: Mapping[str, Any], prepared: Prepared) -> tuple[Any, str, bool]:
    """The model built from ``spec``, fitted on the training subjects if it is multi-subject (has ``adapt``)."""
    model = get_registry().create("head", spec["name"], **spec["options"])
    direction = getattr(model, "direction", "decode")
    shared = hasattr(model, "adapt")
    if shared:
        model.fit({s: ((Y, X, i) if direction == "decode" else (X, Y, i))
                   for s, (Y, X, i) in prepared.train_data.items()})
    return model, direction, shared


def score_sessions(prepared: Prepared, spec: Mapping[str, Any], fitted: tuple[Any, str, bool], k: int | None,
                   n_candidates: int | None = None) -> tuple[dict[str, Any], dict[str, float], dict[str, float],
                                                            np.ndarray]:
    """Adapt (or fit) the model on the new subject's first ``k`` sessions (None: all) and score it.

    Returns the row description, the scores, their chance levels and the per-dimension (decode) or
    per-unit (encode) Pearson r on the evaluation stimuli.
    """
    model, direction, shared = fitted
    order, new = prepared.order, prepared.new
    n_sess = len(order) if k is None else int(k)
    if not 1 <= n_sess <= len(order):
        raise WorkbenchError(f"subject {prepared.new_subject} has {len(order)} sessions; cannot take the first {k}")
    use = np.isin(prepared.labels, order[:n_sess]) & np.isin(new.trial_stimulus_ids, prepared.pool)
    if not use.any():
        raise WorkbenchError(f"the first {n_sess} session(s) of subject {prepared.new_subject} hold no training "
                             "or alignment stimuli")
    ids_k, Y_k = averaged_rows(new, use)
    X_k = prepared.rows(ids_k)
    a, b = (Y_k, X_k) if direction == "decode" else (X_k, Y_k)
    subject = prepared.new_subject
    if shared:
        model.adapt(subject, a, b, stimulus_ids=ids_k)
        predict = lambda A: model.predict(subject, A)  # noqa: E731
    else:
        predict = get_registry().create("head", spec["name"], **spec["options"]).fit(a, b).predict
    base = {"model": spec["label"], "name": spec["name"], "kind": "shared" if shared else "per-subject",
            "subject": subject, "k_sessions": n_sess, "all_sessions": k is None,
            "n_stimuli": len(ids_k), "n_trials": int(use.sum())}
    Y_eval, X_eval = prepared.eval_brain, prepared.eval_targets
    if direction == "decode":
        pred = np.asarray(predict(Y_eval))
        candidates = n_candidates if n_candidates is not None else len(X_eval)
        scores = decode_scores(pred, X_eval, n_candidates=candidates)
        chance = {"top1": 1.0 / min(candidates, len(X_eval)), "two_way": 0.5, "mean_r": 0.0}
        r = pearson_per_output(X_eval, pred)
    else:
        r = pearson_per_unit(Y_eval, np.asarray(predict(X_eval)))
        scores = {"mean_r": float(np.mean(r)), "median_r": float(np.median(r))}
        chance = {"mean_r": 0.0, "median_r": 0.0}
    return base, scores, chance, np.asarray(r)


def adaptation_curve(recordings: Mapping[str, Recording], stimulus_ids: Sequence[str], targets: np.ndarray,
                     new_subject: str, models: Sequence[Mapping[str, Any] | str],
                     sessions: Sequence[int | None] = (1, 2, 5, None), train_subjects: Sequence[str] | None = None,
                     train_split: str = "train", test_split: str = "test", align_fraction: float = 0.0,
                     group: str = "session", n_candidates: int | None = None, seed: int = 0) -> Any:
    """Tidy table (pandas) of each model's score on the new subject against its first k sessions.

    ``targets`` holds one row per ``stimulus_ids`` entry: the embedding a decoder predicts, or the
    features an encoder reads. ``models`` are registered heads as ``{"name", "options", "label"}``;
    ``sessions`` lists k (None: all sessions). ``align_fraction`` of the test stimuli (seeded) are
    given to every model as extra training stimuli (the shared stimuli functional alignment needs)
    and left out of the evaluation. Columns: model, name, kind (shared or per-subject), subject,
    k_sessions, all_sessions, n_stimuli, n_trials, metric, value, chance.
    """
    import pandas as pd

    prepared = prepare_adaptation(recordings, stimulus_ids, targets, new_subject, train_subjects, train_split,
                                  test_split, align_fraction, group, seed)
    built = [(spec, fit_model(spec, prepared)) for spec in map(model_spec, models)]
    records = []
    for k in sessions:
        for spec, fitted in built:
            base, scores, chance, _ = score_sessions(prepared, spec, fitted, k, n_candidates)
            for metric, value in scores.items():
                records.append({**base, "metric": metric, "value": float(value), "chance": chance[metric]})
    return pd.DataFrame.from_records(records)
