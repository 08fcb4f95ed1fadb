"""Voxel captions (``captions:``), BrainSCUBA by retrieval: each well-predicted unit's encoding weights (the
fitted head's weights on raw features, unit-normalised) are projected onto a bank of embeddings in the same space
(softmax over cosine × temperature), and the projection is captioned with the captions of its nearest captioned
bank items, optionally re-ranked by a text encoder that shares the space. Per ROI: the most frequent content words.

The bank is the dataset's stimuli as the encoder's layer embeds them (``bank: stimuli``; for a text encoder these
are the captions themselves) or a folder of images with a ``captions.csv``, embedded by the same encoder."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    StimulusSet,
    Store,
    TextTable,
    WorkbenchError,
    build,
    digest,
    encoder_key,
    feature_path,
    resolve_layers,
    rgb_image,
)
from brain_workbench_plugins.analyses import readout, sections
from brain_workbench_plugins.analyses.concepts import captions as caption_source
from brain_workbench_plugins.analyses.concepts import projection, words
from brain_workbench_plugins.analyses.encoding import EncodingTask

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class TextEncoderSpec(sections._Spec):
    encoder: str = Field(description="a text encoder of the sweep (name or label) sharing the embedding space")
    layer: str | float = Field(1.0, description="its layer (name or relative depth)")


class CaptionsSpec(sections._Spec):
    """Caption each unit's encoding weights by retrieval from a captioned embedding bank."""

    encoder: str = Field(description="sweep encoder (name or label) whose layer lives in an embedding space")
    layer: str | float = Field(1.0, description="its layer (name or relative depth 0–1)")
    head: str = Field("ridge", description="encode head (label or name) whose weights are projected")
    bank: str = Field("stimuli", description="'stimuli' (the dataset's stimuli in that layer) or an image folder "
                                             "holding captions.csv (stimulus_id = file name without suffix)")
    caption_file: str | None = Field(None, description="CSV stimulus_id,caption for the dataset's stimuli "
                                                       "(default: the dataset's own captions)")
    temperature: float = Field(150.0, gt=0.0, description="softmax temperature of the projection (BrainSCUBA: 150)")
    center: bool = Field(True, description="subtract the bank's mean embedding first, as the encoding head sees "
                                           "centred features (off: BrainSCUBA's raw, unit-normalised CLIP space)")
    k: int = Field(5, ge=1, description="captions retrieved per unit")
    candidates: int = Field(20, ge=1, description="nearest captions re-ranked by the text encoder")
    text_encoder: TextEncoderSpec | None = Field(None, description="re-rank retrieved captions by this encoder's "
                                                                   "embedding of them")
    captioner: str | None = Field(None, description="folder of a captioning pipeline (refused: see docs)")
    min_r: float = Field(0.1, description="units whose test r is below this are not captioned")
    rois: list[str] | None = Field(None, description="ROIs summarised (default: all the dataset's)")
    n_words: int = Field(10, ge=1, description="top words kept per ROI (highest lift first)")
    word: str | None = Field(None, description="word whose share is mapped (default: the first ROI's top word)")
    chunk: int = Field(1024, ge=1, description="units projected at a time")
    null_units: int = Field(2000, ge=10, description="random weight vectors whose captions give each word's "
                                                     "reference rate")
    seed: int = 0


def captions_spec(config: Any) -> CaptionsSpec | None:
    return sections.read(config, "captions", CaptionsSpec)


@dataclass(frozen=True)
class CaptionsTask:
    encoding: EncodingTask
    encoding_result: str
    spec: dict[str, Any]
    bank_path: str
    bank_captions: str | None
    text_path: str | None
    dataset: dict[str, Any]


def folder_images(folder: str) -> dict[str, Path]:
    """The images of a bank folder by id (file name without suffix)."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise WorkbenchError(f"captions.bank {folder!r} is neither 'stimuli' nor an existing image folder")
    images = {p.stem: p for p in sorted(root.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    if not images:
        raise WorkbenchError(f"captions.bank folder {folder!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return images


def folder_stimuli(folder: str) -> StimulusSet:
    """A bank folder's images as a stimulus set."""
    images = folder_images(folder)

    def load(ids: Sequence[str]) -> list:
        from PIL import Image

        out = []
        for i in ids:
            with Image.open(images[str(i)]) as image:
                out.append(rgb_image(image, str(i)))
        return out

    return StimulusSet(tuple(images), "image", load, digest("caption-bank", [(k, p.stat().st_size) for k, p in
                                                                              images.items()]))


class CaptionsAnalysis(Analysis):
    """``captions:``: one cell per subject on the finished encoding cell of the named encoder layer."""

    name = "captions"
    version = "1"
    sections = ("captions",)
    id_columns = ("top_words",)
    score_columns = ("captioned_fraction", "mean_caption_score", "word_share")
    summary_value = "word_share"
    summary_what = "share of units whose captions hold the mapped word"
    code_modules = tuple(f"brain_workbench_plugins.analyses.{m}" for m in (
        "concepts.voxel_captions", "concepts.projection", "concepts.words", "concepts.captions", "readout",
        "encoding", "common"))
    progress_label = "captioning units"

    def validate(self, config: Any, dataset: Any, registry: Any) -> None:
        spec = captions_spec(config)
        if spec is None:
            return
        if spec.captioner is not None:
            where = Path(spec.captioner).expanduser()
            state = "does not exist" if not where.exists() else "is a captioning pipeline folder, but captioning " \
                "projected embeddings needs a prefix captioner (ClipCap) that this analysis does not load"
            raise WorkbenchError(f"captions.captioner {spec.captioner!r} {state}; remove captioner to caption by "
                                 "retrieval from the bank")
        if spec.caption_file:
            caption_source.read_caption_file(spec.caption_file)
        if spec.bank != "stimuli":
            folder_images(spec.bank)
            caption_source.check_caption_ids(str(Path(spec.bank).expanduser() / "captions.csv"),
                                             folder_images(spec.bank))

    def plan(self, context: PlanContext) -> list[Cell]:
        spec = captions_spec(context.config)
        if spec is None:
            return []
        encoder = context.encoder(spec.encoder)
        layer = resolve_layers(list(encoder.layers), [spec.layer])[0]
        if layer not in encoder.listed:
            raise WorkbenchError(f"captions: layer {layer!r} of {spec.encoder!r} is not among its listed layers "
                                 f"({', '.join(encoder.listed)}); list it so an encoding cell is fitted on it")
        if spec.bank == "stimuli":
            bank_path, bank_captions = encoder.feature_path(layer), spec.caption_file
            if bank_captions is None and "text" not in context.dataset.modalities:
                raise WorkbenchError(f"captions: dataset {context.dataset.name!r} has no captions (no text stimuli), "
                                     "so its stimuli are no captioned bank; give captions.caption_file or a bank "
                                     "folder with captions.csv")
            if bank_captions:
                caption_source.check_caption_ids(bank_captions, context.stimuli(encoder.modality).ids)
        else:
            if encoder.modality != "image":
                raise WorkbenchError(f"captions: encoder {spec.encoder!r} reads {encoder.modality}, so it has no "
                                     f"image-embedding bank in folder {spec.bank!r}; use bank: stimuli or an image "
                                     "encoder")
            bank_path = feature_path(self.bank_key(context, spec), layer)
            bank_captions = str(Path(spec.bank).expanduser() / "captions.csv")
        text_path = None
        if spec.text_encoder is not None:
            text = context.encoder(spec.text_encoder.encoder)
            if text.modality != "text":
                raise WorkbenchError(f"captions.text_encoder {spec.text_encoder.encoder!r} reads {text.modality}, "
                                     "not text: re-ranking captions needs a text encoder sharing the embedding space")
            text_layer = resolve_layers(list(text.layers), [spec.text_encoder.layer])[0]
            if text_layer not in text.listed:
                raise WorkbenchError(f"captions.text_encoder: layer {text_layer!r} is not among "
                                     f"{spec.text_encoder.encoder!r}'s listed layers ({', '.join(text.listed)})")
            text_path = text.feature_path(text_layer)
        cells = readout.encoding_cells(context, encoder=spec.encoder, layer=layer, head=spec.head)
        if not cells:
            raise WorkbenchError(f"captions: the sweep plans no encoding cell of head {spec.head!r} on "
                                 f"{spec.encoder}/{layer}; add an encode head on that layer")
        dataset = {"name": context.config.dataset.name, "options": dict(context.config.dataset.options),
                   "text": "text" in context.dataset.modalities}
        out = []
        for cell in cells:
            task = CaptionsTask(readout.readout_task(cell), cell.result_path(context.sweep), spec.model_dump(),
                                bank_path, bank_captions, text_path, dataset)
            reads = (*cell.reads, cell.result_path(context.sweep), bank_path, *((text_path,) if text_path else ()))
            out.append(Cell(key=self.cell_key(cell.subject, "v", cell.key, task.spec, bank_path, text_path, dataset),
                            analysis=self.name, subject=cell.subject, model=encoder.label, model_name=encoder.name,
                            layer=layer, depth=cell.depth, label="captions", head=cell.head, phase=1,
                            feature_path=cell.feature_path, response_path=cell.response_path, reads=reads, task=task))
        return out

    @staticmethod
    def bank_key(context: PlanContext, spec: CaptionsSpec) -> str:
        """The feature key of a bank folder as the encoder embeds it (its fingerprint loads the encoder)."""
        encoder = context.encoder(spec.encoder)
        return encoder_key(build("encoder", encoder.name, **encoder.spec.options), folder_stimuli(spec.bank))

    def requirements(self, context: PlanContext, cells: Sequence[Cell]) -> list[FeatureJob | ImageJob]:
        spec = captions_spec(context.config)
        if not cells or spec is None or spec.bank == "stimuli":
            return []
        encoder = context.encoder(spec.encoder)
        built = build("encoder", encoder.name, **encoder.spec.options)
        stimuli = folder_stimuli(spec.bank)
        return [FeatureJob(encoder_key(built, stimuli), (cells[0].layer,), f"{encoder.label} caption bank",
                           lambda: built, lambda: stimuli, encoder.spec.batch_size)]

    def compute(self, store_url: str, cell: Cell) -> CellResult:
        return caption_units(store_url, cell.task)

    def table(self, rows: Any, sweep: str, value: str) -> list[TextTable]:
        keys = tuple((str(r["encoder"]), str(r["subject"]), str(r["roi"])) for _, r in rows.iterrows())
        values = tuple((f"{r['captioned_fraction']:.2f}", str(r["top_words"])) for _, r in rows.iterrows())
        return [TextTable(f"{sweep}: voxel captions (words the units' retrieved captions agree on, highest lift "
                          "first)", ("encoder", "subject", "roi"),
                          ("captioned", "top words (units naming it, × lift over all captioned units)"), keys, values)]

    def figures(self, rows: Any, kit: Any) -> list[Any]:
        from brain_workbench_plugins.analyses.concepts.figures import caption_figures

        return caption_figures(rows, kit)

    def report_section(self, rows: Any, kit: Any) -> list[ReportSection]:
        frame = rows[["encoder", "subject", "roi", "n_units", "captioned_fraction", "mean_caption_score",
                      "top_words"]].copy()
        frame["n_units"] = [str(int(v)) for v in frame["n_units"]]
        note = ("<p class='note'>Each unit whose test r passes the threshold has its encoding weights projected onto "
                "the embedding bank (softmax over cosine similarity × temperature, BrainSCUBA) and is captioned by the "
                "captions of the nearest captioned bank items. A unit names a word when at least half of its captions "
                "hold it; per ROI: each word's count of units naming it and its lift over the rate at which all "
                "captioned units name it (for all units: random weight vectors shaped like the bank), highest lift "
                "first (words named by under 2 % of the ROI's units left out).</p>")
        return [ReportSection("table-captions", "Voxel captions: words per ROI", note + kit.html_table(frame, 3))]


def bank_texts(task: CaptionsTask, ids: list[str]) -> list[str]:
    """The caption text of every bank item ('' where it has none)."""
    found = caption_source.captions_for(task.dataset, task.bank_captions, ids)
    return [""] * len(ids) if found is None else found


def caption_units(store_url: str, task: CaptionsTask) -> CellResult:
    """Per unit its retrieved caption ids and scores; per ROI the words its units name (held by at least half of a
    unit's captions), counted and ranked by lift over the rate at which all captioned units name them (for all
    units: over random weight vectors); and the mapped word's share of each unit's captions."""
    started = time.time()
    spec = task.spec
    store = Store(store_url, mode="r")
    bank_entry = store.open(task.bank_path)
    bank_ids = [str(s) for s in bank_entry["stimulus_ids"]]
    texts = bank_texts(task, bank_ids)
    captioned = np.flatnonzero([bool(t) for t in texts])
    if not len(captioned):
        raise WorkbenchError(f"captions: no bank item of {task.bank_path} has a caption; check the caption source's "
                             "stimulus ids")
    text_features = None
    if task.text_path:
        text_features = np.asarray(store.open(task.text_path)["data"], dtype=np.float64)
        text_ids = {str(s): i for i, s in enumerate(store.open(task.text_path)["stimulus_ids"])}
    bank = np.asarray(bank_entry["data"], dtype=np.float64)
    if spec["center"]:
        bank = bank - bank.mean(axis=0)
    if text_features is not None and text_features.shape[1] != bank.shape[1]:
        raise WorkbenchError(f"captions.text_encoder embeds in {text_features.shape[1]} dimensions but the bank in "
                             f"{bank.shape[1]}: it does not share the embedding space")
    fitted = readout.fit_readout(store_url, task.encoding)
    score = np.asarray(store.open(task.encoding_result)["score"], dtype=np.float64).reshape(-1)
    units = np.flatnonzero(np.nan_to_num(score, nan=-np.inf) >= spec["min_r"])
    n_units, k = len(score), min(spec["k"], len(captioned))
    ids = np.full((n_units, k), "", dtype=object)
    sims = np.full((n_units, k), np.nan, dtype=np.float32)
    weights = fitted.raw_coef.T
    for start in range(0, len(units), spec["chunk"]):
        chunk = units[start:start + spec["chunk"]]
        projected = projection.project_onto_bank(weights[chunk], bank, spec["temperature"])
        if text_features is None:
            index, value = retrieve(projected, bank, captioned, k)
        else:
            near, _ = projection.nearest_bank(projected, bank[captioned], min(spec["candidates"], len(captioned)))
            near = captioned[near]
            rows = np.array([[text_ids.get(bank_ids[i], -1) for i in r] for r in near])
            if (rows < 0).any():
                raise WorkbenchError("captions.text_encoder has no features for some bank captions; it must embed "
                                     "the dataset's text stimuli")
            text = projection.unit_rows(text_features[rows.reshape(-1)]).reshape(*rows.shape, -1)
            rerank = np.einsum("ud,ucd->uc", projection.unit_rows(projected), text)
            order = np.argsort(-rerank, axis=1, kind="stable")[:, :k]
            index, value = np.take_along_axis(near, order, 1), np.take_along_axis(rerank, order, 1)
        ids[chunk] = np.asarray(bank_ids, dtype=object)[index]
        sims[chunk] = value
    text_of = dict(zip(bank_ids, texts))
    rois = {"all": np.ones(n_units, dtype=bool), **{k_: np.asarray(v, bool) for k_, v in fitted.unit_rois.items()}}
    if spec.get("rois"):
        rois = {"all": rois["all"], **{r: rois[r] for r in spec["rois"] if r in rois}}
    done = np.zeros(n_units, dtype=bool)
    done[units] = True
    null_ids = null_retrieval(bank, captioned, bank_ids, spec, k)
    null_rates = {w: c / len(null_ids) for w, c in named_words(null_ids, text_of).items()}
    everywhere = {w: c / max(int(done.sum()), 1) for w, c in named_words(ids[done], text_of).items()}
    counts = {roi: roi_words(named_words(ids[mask & done], text_of), int((mask & done).sum()),
                             null_rates if roi == "all" else everywhere) for roi, mask in rois.items()}
    first = next((r for r in rois if r != "all"), "all")
    word = spec.get("word") or (counts[first][0][0] if counts[first] else "")
    share = word_share(ids, done, text_of, word)
    summary, arrays = [], {}
    for roi, mask in rois.items():
        if not mask.any():
            continue
        top = counts[roi][:spec["n_words"]]
        arrays[f"words_{roi}"] = np.asarray([w for w, _, _ in top], dtype=str)
        arrays[f"counts_{roi}"] = np.asarray([c for _, c, _ in top], dtype=np.float32)
        arrays[f"lift_{roi}"] = np.asarray([e for _, _, e in top], dtype=np.float32)
        ok = mask & done
        summary.append({"roi": roi, "n_units": int(mask.sum()), "captioned_fraction": float(ok.sum() / mask.sum()),
                        "mean_caption_score": float(np.nanmean(sims[ok, 0])) if ok.any() else None,
                        "word_share": float(np.nanmean(share[ok])) if ok.any() else None, "word": word,
                        "top_words": ", ".join(f"{w} ({c:.0f}, ×{e:.1f})" for w, c, e in top)})
    arrays.update({"caption_ids": ids.astype(str), "caption_scores": sims, "captioned": done,
                   "word_share": share.astype(np.float32), "word": np.asarray([word], dtype=str)})
    return CellResult(tuple(summary), int(len(units)), round(time.time() - started, 3), arrays)


def retrieve(projected: np.ndarray, bank: np.ndarray, captioned: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` captioned bank items (indices into the bank) nearest each projected unit, and their cosines."""
    index, value = projection.nearest_bank(projected, bank[captioned], k)
    return captioned[index], value


def named_words(unit_ids: np.ndarray, text_of: dict[str, str]) -> Any:
    """How many units name each word: a unit names a word when at least half of its retrieved captions hold it."""
    counts = words.word_counts([])
    if not len(unit_ids):
        return counts
    held = {i: set(words.content_words(t)) for i, t in text_of.items()}
    need = unit_ids.shape[1] / 2.0
    for row in unit_ids:
        tally = words.word_counts([" ".join(held[str(i)]) for i in row])
        counts.update({w: 1.0 for w, c in tally.items() if c >= need})
    return counts


def null_retrieval(bank: np.ndarray, captioned: np.ndarray, bank_ids: list[str], spec: dict[str, Any],
                   k: int) -> np.ndarray:
    """Caption ids retrieved for random weight vectors shaped like the data (Gaussian combinations of the centred
    bank embeddings, seeded): the rate at which such a unit names a word is the reference for an ROI's lift
    (it carries the bank's word frequencies and its retrieval neighbourhoods, e.g. hub captions)."""
    rng = np.random.default_rng(spec["seed"])
    centred = bank - bank.mean(axis=0)
    weights = rng.standard_normal((spec["null_units"], len(bank))) @ centred
    index, _ = retrieve(projection.project_onto_bank(weights, bank, spec["temperature"]), bank, captioned, k)
    return np.asarray(bank_ids, dtype=object)[index]


def roi_words(counts: Any, n_units: int, rates: dict[str, float],
              min_share: float = 0.02) -> list[tuple[str, float, float]]:
    """(word, units naming it, lift), most over-represented first: lift is (count + 1) / (expected + 1) with the
    expectation ``n_units`` × the word's reference rate; words named by fewer than ``min_share`` of the units (and
    fewer than 3) are left out, so a rare word cannot lead on one unit."""
    floor = max(3.0, min_share * n_units)
    found = [(w, float(c), float((c + 1.0) / (n_units * rates.get(w, 0.0) + 1.0))) for w, c in counts.items()
             if c >= floor]
    return sorted(found, key=lambda t: (-t[2], -t[1], t[0]))


def word_share(ids: np.ndarray, done: np.ndarray, text_of: dict[str, str], word: str) -> np.ndarray:
    """Per unit, the fraction of its retrieved captions holding ``word`` (NaN for units not captioned)."""
    share = np.full(len(ids), np.nan)
    if not word:
        return share
    has = {i: word in words.content_words(t) for i, t in text_of.items()}
    for unit in np.flatnonzero(done):
        share[unit] = float(np.mean([has[str(i)] for i in ids[unit]]))
    return share
