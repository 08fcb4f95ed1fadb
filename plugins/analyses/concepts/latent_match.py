"""Are two SAEs' latents the same? (``latent_match:``) Two ``sae`` encoders of a sweep (seeds, layers or models) on
the same stimuli: latents matched by activation correlation and, when both read one input space, by decoder cosine,
each greedily and by Hungarian assignment; the fraction matched above a threshold, the mean matched similarity, and
paired SVCCA and RSA on the matched decoder rows against a shuffled-pairing null. Activation matching uses the
latents active on at least one stimulus in each SAE (a dead latent has no activation to correlate), so its fraction
is over the smaller number of live latents; decoder matching uses every latent."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    PlanContext,
    ReportSection,
    Store,
    TextTable,
    WorkbenchError,
    build,
)
from brain_workbench_plugins.analyses import sections
from brain_workbench_plugins.analyses.concepts import matching
from brain_workbench_plugins.analyses.concepts.analysis import sae_encoder

SIMILARITIES = ("activation", "decoder")


class LatentMatchSpec(sections._Spec):
    """Match the latents of two SAE encoders of the sweep."""

    a: str = Field(description="first `sae` encoder (name or label)")
    b: str = Field(description="second `sae` encoder (name or label)")
    layer: str = Field("latents", description="the SAE encoders' latent layer")
    methods: list[Literal["greedy", "hungarian"]] = Field(default_factory=lambda: ["greedy", "hungarian"])
    threshold: float = Field(0.5, description="a pair is shared when its similarity reaches this")
    permutations: int = Field(100, ge=0, description="shuffled pairings of the SVCCA/RSA null")
    max_pairs: int = Field(2000, ge=3, description="best-matched pairs SVCCA and RSA use")
    seed: int = 0


def latent_match_spec(config: Any) -> LatentMatchSpec | None:
    return sections.read(config, "latent_match", LatentMatchSpec)


@dataclass(frozen=True)
class LatentMatchTask:
    paths: tuple[str, str]
    encoders: tuple[dict[str, Any], dict[str, Any]]
    labels: tuple[str, str]
    spec: dict[str, Any]


class LatentMatchAnalysis(Analysis):
    """``latent_match:``: one cell comparing two SAE encoders' latents over the dataset's stimuli."""

    name = "latent-match"
    version = "1"
    sections = ("latent_match",)
    id_columns = ("similarity", "method", "sae_b", "threshold")
    score_columns = ("fraction_matched", "mean_similarity", "null_mean_similarity", "svcca", "svcca_null", "p_svcca",
                     "rsa", "rsa_null", "p_rsa")
    code_modules = tuple(f"brain_workbench_plugins.analyses.concepts.{m}" for m in (
        "latent_match", "matching", "correlation", "projection"))
    progress_label = "matching latents"

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = latent_match_spec(context.config)
        if spec is None:
            return []
        a = sae_encoder(context, spec.a, spec.layer, "latent_match")
        b = sae_encoder(context, spec.b, spec.layer, "latent_match")
        if a.modality != b.modality:
            raise WorkbenchError(f"latent_match: {spec.a!r} reads {a.modality} stimuli and {spec.b!r} reads "
                                 f"{b.modality}: latents are matched on the same stimuli; pick two SAEs over encoders "
                                 "of one modality")
        paths = (a.feature_path(spec.layer), b.feature_path(spec.layer))
        encoders = tuple({"name": e.name, "options": dict(e.spec.options), "modality": e.modality,
                          "dataset": {"name": context.config.dataset.name,
                                      "options": dict(context.config.dataset.options)}} for e in (a, b))
        task = LatentMatchTask(paths, (encoders[0], encoders[1]), (a.label, b.label), spec.model_dump())
        return [Cell(key=self.cell_key("all", "m", paths, spec.model_dump()), analysis=self.name, subject="all",
                     model=a.label, model_name=a.name, layer=spec.layer, depth=1.0, label="latent-match",
                     head="latent-match", reads=paths, task=task)]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return match_saes(store_url, cell.task)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        columns = [c for c in ("n_latents", "fraction_matched", "mean_similarity", "null_mean_similarity", "svcca",
                               "svcca_null", "p_svcca", "rsa", "rsa_null", "p_rsa") if c in rows.columns]
        keys = tuple((str(r["encoder"]), str(r["sae_b"]), str(r["similarity"]), str(r["method"]))
                     for _, r in rows.iterrows())
        values = tuple(tuple("" if r[c] != r[c] else (str(int(r[c])) if c == "n_latents" else f"{r[c]:.3f}")
                             for c in columns) for _, r in rows.iterrows())
        return [TextTable(f"{sweep}: latent matching (threshold {rows.iloc[0].get('threshold', '')})",
                          ("sae a", "sae b", "similarity", "method"), tuple(columns), keys, values)]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        from brain_workbench_plugins.analyses.concepts.figures import cell_arrays, plot_match_distributions

        key = str(sorted(rows["cell"])[0])
        arrays, attrs = cell_arrays(kit, key)
        a, b = attrs["task"]["labels"]
        return [kit.draw("latent_match.png", (key,), lambda p: plot_match_distributions(
            p, arrays, f"{kit.sweep}: {a} vs {b} latents, matched similarity against the null"),
            f"Similarity of each matched latent pair of {a} and {b} (Hungarian assignment) against the null: the "
            "same matching with one SAE's activations shuffled across stimuli (activation correlation) or against a "
            "random unit-norm dictionary (decoder cosine); the dashed line is the sharing threshold.")]

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        frame = rows[["encoder", "sae_b", "similarity", "method", "n_latents", "fraction_matched", "mean_similarity",
                      "null_mean_similarity", "svcca", "svcca_null", "p_svcca", "rsa", "rsa_null", "p_rsa"]]
        note = ("<p class='note'>Latents of two SAEs matched one-to-one (greedy or Hungarian) by activation "
                "correlation over the stimuli or by decoder cosine; fraction of the smaller SAE's latents matched at or "
                "above the threshold, mean matched similarity (and under the null), and SVCCA / RSA of the matched "
                "decoder rows with their shuffled-pairing null mean and permutation p-value.</p>")
        return [ReportSection("table-latent-match", "Latent matching of two SAEs", note + kit.html_table(frame, 4))]


def latents_of(store: Store, path: str) -> tuple[np.ndarray, list[str]]:
    entry = store.open(path)
    return np.asarray(entry["data"], dtype=np.float32), [str(s) for s in entry["stimulus_ids"]]


def decoder_of(encoder: dict[str, Any]) -> np.ndarray:
    """An SAE encoder's decoder rows (its width read off one stimulus's base features)."""
    built = build("encoder", encoder["name"], **encoder["options"])
    dataset = build("dataset", encoder["dataset"]["name"], **encoder["dataset"]["options"])
    stimuli = dataset.stimuli(encoder["modality"])
    d_in = built.encode(stimuli.loader(list(stimuli.ids[:1])), ["reconstruction"])["reconstruction"].shape[1]
    return np.asarray(built.decoder(d_in), dtype=np.float64)


def match_saes(store_url: str, task: LatentMatchTask) -> CellResult:
    """Rows per (similarity, method): fraction matched, mean similarity and its null, SVCCA and RSA with nulls."""
    started = time.time()
    spec = task.spec
    store = Store(store_url, mode="r")
    (za, ids_a), (zb, ids_b) = (latents_of(store, p) for p in task.paths)
    if ids_a != ids_b:
        common = len(set(ids_a) & set(ids_b))
        raise WorkbenchError(f"latent_match: {task.labels[0]} has latents of {len(ids_a)} stimuli and "
                             f"{task.labels[1]} of {len(ids_b)} ({common} shared, or in another order); latents are "
                             "matched on the same stimuli")
    da, db = decoder_of(task.encoders[0]), decoder_of(task.encoders[1])
    rng = np.random.default_rng(spec["seed"])
    alive_a, alive_b = np.flatnonzero((za > 0).any(0)), np.flatnonzero((zb > 0).any(0))
    if not len(alive_a) or not len(alive_b):
        raise WorkbenchError(f"latent_match: {task.labels[0 if not len(alive_a) else 1]} has no latent active on "
                             "any stimulus; check its checkpoint and base layer")
    za, zb = za[:, alive_a], zb[:, alive_b]
    sims = {"activation": (alive_a, alive_b, matching.activation_similarity(za, zb),
                           matching.activation_similarity(za, zb[rng.permutation(len(zb))]))}
    if da.shape[1] == db.shape[1]:
        every_a, every_b = np.arange(len(da)), np.arange(len(db))
        sims["decoder"] = (every_a, every_b, matching.decoder_similarity(da, db),
                           matching.decoder_similarity(da, rng.standard_normal(db.shape)))
    rows, arrays = [], {}
    for similarity, (keep_a, keep_b, observed, null) in sims.items():
        for method in spec["methods"]:
            result = matching.compare(observed, method, spec["threshold"], (da[keep_a], db[keep_b]),
                                      spec["permutations"], spec["max_pairs"], spec["seed"])
            null_sims = matching.match(null, method)[2]
            tag = f"{similarity}_{method}"
            arrays.update({f"pairs_a_{tag}": keep_a[result.a], f"pairs_b_{tag}": keep_b[result.b],
                           f"similarity_{tag}": result.similarity.astype(np.float32),
                           f"null_similarity_{tag}": null_sims.astype(np.float32)})
            row: dict[str, Any] = {"roi": "all", "similarity": similarity, "method": method, "sae_b": task.labels[1],
                                   "n_units": None, "n_latents": int(min(len(keep_a), len(keep_b))),
                                   "threshold": spec["threshold"],
                                   "fraction_matched": result.fraction,
                                   "mean_similarity": result.mean_similarity,
                                   "null_mean_similarity": float(null_sims.mean())}
            for name in ("svcca", "rsa"):
                test = getattr(result, name)
                if test is not None:
                    row.update({name: test.value, f"{name}_null": test.null_mean, f"p_{name}": test.p})
            rows.append(row)
    arrays["threshold"] = np.asarray([spec["threshold"]], dtype=np.float32)
    return CellResult(tuple(rows), len(ids_a), round(time.time() - started, 3), arrays)
