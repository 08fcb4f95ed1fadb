"""Concept maps (``concepts:``): which latent of an ``sae`` encoder drives each unit, and what each latent means.

Per latent: its Pearson r with every unit over the subject's stimuli (chunked; only the chosen latents' rows are
kept), its weight in the fitted encoding head, its top stimuli with activations, a label from their captions, its
monosemanticity in an independent embedding, and whether it is dead or dense. Per unit: its best latent by
argmax of r and one-to-one by Hungarian assignment (SAE-BrainMap)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from brain_workbench.sdk.analysis import (
    Analysis,
    Cell,
    CellResult,
    FeatureJob,
    ImageJob,
    PlanContext,
    ReportSection,
    Store,
    TextTable,
    WorkbenchError,
    load_features,
    prepared_recording,
    resolve_layers,
    result_path,
)
from brain_workbench_plugins.analyses import common, readout, sections
from brain_workbench_plugins.analyses.concepts import captions as caption_source
from brain_workbench_plugins.analyses.concepts import correlation, latents, sae_features, words
from brain_workbench_plugins.analyses.encoding import EncodingTask


class EmbeddingSpec(sections._Spec):
    encoder: str = Field(description="a sweep encoder (name or label) other than the SAE's base layer")
    layer: str | float = Field(description="its layer (name or relative depth 0–1)")


class CachedSAESpec(sections._Spec):
    """An SAE over a sweep encoder's cached layer (that encoder is not run again; see ``sae_features``)."""

    encoder: str = Field(description="the base encoder of the sweep (name or label)")
    layer: str | float = Field(description="its layer (name or relative depth 0–1)")
    checkpoint: str = Field(description="SAE run name in the sweep's store (trained there when absent)")
    train: dict[str, Any] | None = Field(None, description="training options (as `workbench sae train`)")
    options: dict[str, Any] = Field(default_factory=dict, description="further `sae` encoder options")


class ConceptsSpec(sections._Spec):
    """Concept maps of one SAE's latents against the brain: an ``sae`` encoder of the sweep, or an SAE over a
    sweep encoder's cached layer (``sae:``)."""

    encoder: str | None = Field(None, description="an `sae` encoder of the sweep (name or label)")
    sae: CachedSAESpec | None = Field(None, description="or: an SAE over a cached layer of a sweep encoder")
    layer: str = Field("latents", description="the SAE encoder's latent layer")
    head: str = Field("ridge", description="encode head (label or name) whose fitted weights are read")
    top_k: int = Field(9, ge=2, description="top stimuli kept per latent")
    latents: list[int] | None = Field(None, description="latents drawn on the brain (default: each ROI's most "
                                                        "frequent best latent)")
    n_show: int = Field(3, ge=1, description="latents drawn when `latents` is not given")
    dense_above: float = Field(0.5, gt=0.0, le=1.0, description="a latent active on more than this fraction of "
                                                                "stimuli is dense")
    min_r: float = Field(0.1, description="units whose best r is below this are unlabelled in the label map")
    embedding: EmbeddingSpec | None = Field(
        default_factory=lambda: EmbeddingSpec(encoder="efficientnet", layer="pooled"),
        description="independent embedding for monosemanticity (null: skip it)")
    captions: str | None = Field(None, description="CSV file (stimulus_id, caption); default: the dataset's text "
                                                   "stimuli")
    chunk: int = Field(1024, ge=1, description="latents per correlation chunk")
    max_assignment: int = Field(50_000_000, ge=1, description="largest latents × units matrix the Hungarian "
                                                              "assignment may build; above it, the best-correlated "
                                                              "units are assigned")


def concepts_spec(config: Any) -> ConceptsSpec | None:
    return sections.read(config, "concepts", ConceptsSpec)


@dataclass(frozen=True)
class ConceptsTask:
    encoding: EncodingTask
    spec: dict[str, Any]
    embedding_path: str | None
    dataset: dict[str, Any]


def sae_encoder(context: PlanContext, name: str, layer: str, what: str) -> Any:
    """The configured ``sae`` encoder a section names, refused unless it lists its latent layer."""
    encoder = context.encoder(name)
    if encoder.name != "sae":
        raise WorkbenchError(f"{what}.encoder {name!r} is a {encoder.name!r} encoder, not an `sae` encoder: "
                             "concepts and latent matching read SAE latents")
    if layer not in encoder.listed:
        raise WorkbenchError(f"{what}: SAE encoder {name!r} has no {layer!r} layer among its listed layers "
                             f"({', '.join(encoder.listed) or 'none'}); add {layer} to its layers")
    return encoder


def embedding_path(context: PlanContext, spec: EmbeddingSpec | None, what: str) -> str | None:
    """The feature path of the independent embedding a section names (None when it names none)."""
    if spec is None:
        return None
    try:
        encoder = context.encoder(spec.encoder)
    except WorkbenchError:
        raise WorkbenchError(f"{what}.embedding names encoder {spec.encoder!r}, which the sweep does not run; add it "
                             f"to encoders or set {what}.embedding: null") from None
    layer = resolve_layers(list(encoder.layers), [spec.layer])[0]
    if layer not in encoder.listed:
        raise WorkbenchError(f"{what}.embedding: layer {layer!r} of {spec.encoder!r} is not among its listed layers "
                             f"({', '.join(encoder.listed)}); list it so its features are extracted")
    return str(encoder.feature_path(layer))


class ConceptsAnalysis(Analysis):
    """``concepts:``: one cell per subject on the encoding cell of the SAE encoder's latents."""

    name = "concepts"
    version = "1"
    sections = ("concepts",)
    id_columns = ("top_latent", "top_label")
    score_columns = ("mean_best_r", "top_latent_share", "distinct_best", "dead_fraction", "dense_fraction",
                     "mean_monosemanticity")
    summary_value = "mean_best_r"
    summary_what = "mean best-latent r"
    code_modules = tuple(f"brain_workbench_plugins.analyses.{m}" for m in (
        "concepts.analysis", "concepts.correlation", "concepts.latents", "concepts.words", "concepts.captions",
        "concepts.sae_features",
        "readout", "encoding", "common"))
    progress_label = "mapping concepts"

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = concepts_spec(config)
        if spec is None:
            return
        if (spec.encoder is None) == (spec.sae is None):
            raise WorkbenchError("concepts: give either encoder (an `sae` encoder of the sweep) or sae (an SAE over a "
                                 "sweep encoder's layer), not both or neither")
        if spec.captions:
            caption_source.read_caption_file(spec.captions)

    def latents(self, context: PlanContext, spec: ConceptsSpec) -> tuple[Any, str, str, list[Cell], Any]:
        """(model label, latents feature path, layer, the encoding cells whose tasks are refitted on the latents,
        the feature job writing the latents or None)."""
        if spec.encoder is not None:
            encoder = sae_encoder(context, spec.encoder, spec.layer, "concepts")
            cells = readout.encoding_cells(context, encoder=spec.encoder, layer=spec.layer, head=spec.head)
            return encoder.label, encoder.feature_path(spec.layer), spec.layer, cells, None
        assert spec.sae is not None
        base = context.encoder(spec.sae.encoder)
        layer = resolve_layers(list(base.layers), [spec.sae.layer])[0]
        extracted = set(base.listed) | {name for head in context.config.heads for name in common.head_layers(head, base)}
        if layer not in extracted:
            raise WorkbenchError(f"concepts.sae: layer {layer!r} of {spec.sae.encoder!r} is neither among its listed "
                                 f"layers ({', '.join(base.listed)}) nor a head's layer; list it so its features are "
                                 "cached")
        options = {"base": base.name, "base_options": dict(base.spec.options), "layer": layer,
                   "checkpoint": spec.sae.checkpoint, "train": spec.sae.train, **spec.sae.options}
        label = f"sae({base.label}/{layer})"
        job, path = sae_features.latents_job(str(context.config.store), base.feature_path(layer), base.modality,
                                             options, label)
        cells = readout.encoding_cells(context, encoder=spec.sae.encoder, layer=layer, head=spec.head)
        if not cells:  # the head's task (training rows, options) is refitted on the latents: any layer's cell serves
            by_subject: dict[str, Cell] = {}
            for cell in readout.encoding_cells(context, encoder=spec.sae.encoder, head=spec.head):
                by_subject.setdefault(cell.subject, cell)
            cells = list(by_subject.values())
        return label, path, sae_features.LATENTS, cells, job

    @staticmethod
    def sae_base_path(context: PlanContext, spec: ConceptsSpec) -> str | None:
        """The feature path of the base layer the SAE reads, when it is one of the sweep's encoders' layers."""
        if spec.sae is not None:
            base = context.encoder(spec.sae.encoder)
            return str(base.feature_path(resolve_layers(list(base.layers), [spec.sae.layer])[0]))
        options = dict(context.encoder(str(spec.encoder)).spec.options)
        for info in context.encoders:
            if info.name == options.get("base") and info.spec.options == options.get("base_options", {}) \
                    and options.get("layer") is not None:
                return str(info.feature_path(resolve_layers(list(info.layers), [options["layer"]])[0]))
        return None

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = concepts_spec(context.config)
        if spec is None:
            return []
        label, latents_path, layer, cells, _ = self.latents(context, spec)
        embedding = embedding_path(context, spec.embedding, "concepts")
        if embedding is not None and embedding == self.sae_base_path(context, spec):
            raise WorkbenchError(f"concepts.embedding {spec.embedding.encoder}/{spec.embedding.layer} is the layer the "
                                 "SAE itself reads, so it is not an independent embedding for monosemanticity; name "
                                 "another encoder's layer or set concepts.embedding: null")
        if spec.captions:
            caption_source.check_caption_ids(spec.captions, context.stimuli("image").ids)
        if not cells:
            raise WorkbenchError(f"concepts: the sweep plans no encoding cell of head {spec.head!r} on "
                                 f"{spec.encoder or spec.sae.encoder}/{layer}; add an encode head on that layer")
        dataset = {"name": context.config.dataset.name, "options": dict(context.config.dataset.options),
                   "text": "text" in context.dataset.modalities}
        out = []
        for cell in cells:
            encoding = dataclasses.replace(readout.readout_task(cell), feature_path=latents_path)
            task = ConceptsTask(encoding, spec.model_dump(), embedding, dataset)
            reads = (cell.response_path, latents_path, *((embedding,) if embedding else ()))
            out.append(Cell(key=self.cell_key(cell.subject, "c", cell.key, latents_path, task.spec, embedding, dataset),
                            analysis=self.name, subject=cell.subject, model=label, model_name="sae",
                            layer=layer, depth=1.0, label="concepts", head=cell.head,
                            feature_path=latents_path, response_path=cell.response_path, reads=reads, task=task))
        return out

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        spec = concepts_spec(context.config)
        if not cells or spec is None or spec.sae is None:
            return []
        return [self.latents(context, spec)[4]]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return concept_maps(store_url, cell.task)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        keys, values = [], []
        for (encoder, subject, roi), part in rows.groupby(["encoder", "subject", "roi"], sort=False):
            row = part.iloc[0]
            keys.append((str(encoder), str(subject), str(roi)))
            values.append((str(int(row["top_latent"])), str(row["top_label"]), f"{row['top_latent_share']:.2f}",
                           f"{row['mean_best_r']:.3f}", str(int(row["distinct_best"]))))
        return [TextTable(f"{sweep}: concepts (per subject; most frequent best latent per ROI)",
                          ("sae", "subject", "roi"), ("top latent", "label", "share", "mean best r", "distinct"),
                          tuple(keys), tuple(values))]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        from brain_workbench_plugins.analyses.concepts import figures

        return figures.concept_figures(rows, kit)

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        frame = rows[["encoder", "subject", "roi", "n_units", "top_latent", "top_label", "top_latent_share",
                      "mean_best_r", "distinct_best"]].copy()
        for column in ("n_units", "top_latent", "distinct_best"):
            frame[column] = [str(int(v)) for v in frame[column]]
        first = rows.iloc[0]
        mono = first.get("mean_monosemanticity")
        note = (f"<p class='note'>For each ROI, the SAE latent that is most often the best-correlated latent of its "
                f"units (Pearson r over the subject's stimuli), its label (the most frequent content words of its top "
                f"stimuli's captions) and the share of the ROI's units it is best for. Dead latents: "
                f"{first['dead_fraction']:.1%}; dense: {first['dense_fraction']:.1%}; mean monosemanticity "
                f"{'n/a' if mono is None or mono != mono else f'{mono:.3f}'}. "
                "<code>workbench concepts show</code> lists every latent.</p>")
        return [ReportSection("table-concepts", "Concepts: SAE latents per ROI", note + kit.html_table(frame, 3))]


def load_cell(store: Store, sweep: str, key: str) -> dict[str, np.ndarray]:
    """Every array of a finished cell, by name."""
    reader = store.open(result_path(sweep, key))
    return {name: reader[name] for name in reader.names()}


def concept_maps(store_url: str, task: ConceptsTask) -> CellResult:
    """The concept cell's per-unit and per-latent arrays and one row per ROI."""
    started = time.time()
    spec = task.spec
    store = Store(store_url, mode="r")
    data = prepared_recording(store_url, task.encoding.prep)
    ids = [str(s) for s in (*data["train_ids"], *data["test_ids"])]
    Y = np.concatenate([data["Y_train"], data["Y_test"]]).reshape(len(ids), -1)
    Z = load_features(store, task.encoding.feature_path, ids).astype(np.float32)
    if Z.shape[1] == 0 or not (Z > 0).any():
        raise WorkbenchError(f"concepts: {task.encoding.feature_path} holds no active SAE latent on this subject's "
                             "stimuli; check the SAE checkpoint and its base layer")
    if spec.get("latents") and max(spec["latents"]) >= Z.shape[1]:
        raise WorkbenchError(f"concepts.latents lists latent {max(spec['latents'])} but the SAE has {Z.shape[1]} "
                             f"latents (0–{Z.shape[1] - 1})")
    fitted = readout.fit_readout(store_url, task.encoding)
    best, best_r, peak, _ = correlation.latent_summaries(Z, Y, spec["chunk"])
    assigned = assignment(Z, Y, best_r, spec["chunk"], spec["max_assignment"])
    dead, dense = latents.dead_and_dense(Z, spec["dense_above"])
    top_index, top_acts = latents.top_stimuli(Z, spec["top_k"])
    top_ids = np.asarray(ids, dtype=str)[top_index]
    mono = np.full(Z.shape[1], np.nan)
    if task.embedding_path:
        E = load_features(store, task.embedding_path, ids)
        alive = ~dead
        mono[alive] = latents.monosemanticity_scores(top_index[alive], top_acts[alive], E)
    texts = caption_source.captions_for(task.dataset, spec.get("captions"), ids)
    labels = latent_labels(texts, top_index, top_acts)
    rois = {"all": np.ones(Y.shape[1], dtype=bool), **{k: np.asarray(v, bool) for k, v in data["rois"].items()}}
    chosen = chosen_latents(spec, best, best_r, rois)
    chosen_r = np.concatenate([r for _, r in correlation.correlation_chunks(Z[:, chosen], Y, spec["chunk"])]) \
        if len(chosen) else np.zeros((0, Y.shape[1]), np.float32)
    coef = np.asarray(fitted.coef, dtype=np.float64)
    summary = []
    for roi, mask in rois.items():
        if not mask.any():
            continue
        good = mask & (best_r >= spec["min_r"])
        counts = np.bincount(best[good], minlength=Z.shape[1]) if good.any() else np.zeros(Z.shape[1], int)
        top = int(counts.argmax()) if good.any() else -1
        summary.append({"roi": roi, "n_units": int(mask.sum()), "mean_best_r": float(best_r[mask].mean()),
                        "top_latent": top, "top_label": labels[top] if top >= 0 else "",
                        "top_latent_share": float(counts[top] / mask.sum()) if top >= 0 else 0.0,
                        "distinct_best": int((counts > 0).sum()), "dead_fraction": float(dead.mean()),
                        "dense_fraction": float(dense.mean()),
                        "mean_monosemanticity": float(np.nanmean(mono)) if np.isfinite(mono).any() else None})
    arrays = {"best_latent": best, "best_r": best_r, "assigned_latent": assigned,
              "best_weight_latent": coef.argmax(axis=0).astype(np.int64),
              "peak_r": peak, "head_weight_rms": np.sqrt((coef ** 2).mean(axis=1)).astype(np.float32),
              "firing_rate": latents.firing_rates(Z).astype(np.float32), "dead": dead, "dense": dense,
              "monosemanticity": mono.astype(np.float32), "top_ids": top_ids, "top_acts": top_acts.astype(np.float32),
              "labels": np.asarray(labels, dtype=str), "chosen": np.asarray(chosen, dtype=np.int64),
              "chosen_r": chosen_r.astype(np.float32),
              "chosen_weights": coef[chosen].astype(np.float32) if len(chosen) else np.zeros((0, Y.shape[1]), np.float32)}
    return CellResult(tuple(summary), len(ids), round(time.time() - started, 3), arrays)


def assignment(Z: np.ndarray, Y: np.ndarray, best_r: np.ndarray, chunk: int, budget: int) -> np.ndarray:
    """Per unit, its latent under a one-to-one Hungarian assignment on r (-1 when none); when latents × units
    exceeds ``budget``, only the units of highest best r that fit are assigned."""
    n_latents, n_units = Z.shape[1], Y.shape[1]
    keep = np.arange(n_units) if n_latents * n_units <= budget else \
        np.sort(np.argsort(-best_r, kind="stable")[:max(1, budget // n_latents)])
    sim = np.empty((n_latents, len(keep)), dtype=np.float32)
    for block, r in correlation.correlation_chunks(Z, Y[:, keep], chunk):
        sim[block] = r
    out = np.full(n_units, -1, dtype=np.int64)
    out[keep] = correlation.assigned_latents(sim)
    return out


def latent_labels(texts: list[str] | None, top_index: np.ndarray, top_acts: np.ndarray) -> list[str]:
    """Each latent's label: the top content words of the captions of its top stimuli on which it is active, minus
    words most captions share ('' for a latent active on none, or without captions)."""
    if texts is None:
        return [""] * len(top_index)
    drop = words.common_words(texts)
    return [words.label([texts[i] for i in rows[acts > 0]], 3, drop) for rows, acts in zip(top_index, top_acts)]


def chosen_latents(spec: dict[str, Any], best: np.ndarray, best_r: np.ndarray, rois: dict[str, np.ndarray]) -> list[int]:
    """The latents drawn on the brain: those configured, else each ROI's most frequent best latent (in ROI order)."""
    if spec.get("latents"):
        return [int(i) for i in spec["latents"]]
    chosen: list[int] = []
    for roi, mask in rois.items():
        good = mask & (best_r >= spec["min_r"])
        if roi == "all" or not good.any():
            continue
        top = int(np.bincount(best[good]).argmax())
        if top not in chosen:
            chosen.append(top)
    return chosen[:spec["n_show"]]
