"""The embedded default dataset: a simulated, NSD-shaped fMRI experiment that needs no download.

Generating model (what the demo should reveal):

* **Stimuli.** ``n_images`` procedurally drawn 224×224 images, seeded: a textured background
  (plain, stripes, checker, dots or noise; orientation, spatial frequency, contrast, colour) with one to
  three objects of one of eight shape categories (colour, size, position). Each image has a caption
  built from its parameters plus a *scene topic* ("at the beach", "in a kitchen", ...) that is
  **not drawn** in the image: only a text encoder can see it.
* **Cortex.** Units are the 20,484 vertices of fsaverage5 (both hemispheres, nilearn's mesh).
  ROIs are rings of increasing angular distance from the occipital pole on the registered sphere:
  V1, V2, V3, then hV4 (ventral) / LO (lateral-dorsal), then VOT (ventral temporal) and a
  lateral "semantic" ROI. Vertices outside every ROI carry noise only.
* **Shared latent factors.** Every subject's brain is driven by the same stimulus-dependent latent
  factors: four standardised feature spaces, ``z(s) = [low(s), mid(s), shape(s), topic(s)]``
  (``feature_spaces``; 43 columns): low-level image statistics computed from the pixels (mean
  colour, luminance contrast, oriented gradient energy, spatial-frequency energy), mid-level
  texture (kind, orientation, frequency, contrast) and object area, shape category, and caption
  topic. Each ROI weighs them by ``ROI_MIX`` (V1 ≈ all low-level; V2–hV4 add mid-level; LO and VOT
  shape; the semantic ROI topic).
* **Subject-specific mixing.** Subject ``j``'s vertex ``v`` in ROI ``r`` responds to stimulus ``s`` on
  trial ``t`` as ``y = snr_r · Σ_f √w_rf · z_f(s) · m_jvf + b_jv + noise · ε_t``, where the mixing
  weights ``m_jvf = √(1-ρ) · a_jvf + √ρ · c_vf`` combine a subject's own Gaussian draw ``a`` with a
  draw ``c`` common to all subjects at the same vertex (``shared_topography`` = ρ; 0 by default,
  so subjects share the latent factors but no vertex-to-vertex correspondence, the setting of
  hyperalignment and shared-subject decoders; ρ > 0 adds the partial anatomical correspondence of
  data on a common surface). ``b`` is a per-vertex baseline, ``ε`` independent Gaussian noise per
  trial (3 repetitions per image), so the per-vertex noise ceiling is finite and known.
* **Design.** Like NSD, ``n_test`` images form a ``test`` split shown to every subject; each
  subject sees its own ``n_train`` training images from the remaining pool (consecutive subjects
  overlap by two thirds). Trials are presented in a random order, cut into ``n_sessions``
  consecutive sessions of equal length (±1 trial); ``trial_groups["session"]`` labels them
  ``"1"`` … ``"n"``.

Expected result: early ROIs are best explained by early layers of an ImageNet-trained network,
later ROIs by later layers; the semantic ROI only by the caption (text) encoder; vertices outside
the ROIs by nothing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import BrainRDMs, Option, Recording, StimulusSet, Units, WorkbenchError, digest, hookimpl

SHAPES = ["circle", "square", "triangle", "star", "cross", "ring", "diamond", "arrow"]
TEXTURES = ["plain", "striped", "checkered", "dotted", "noisy"]
COLOURS = [("red", 0.0), ("orange", 0.08), ("yellow", 0.15), ("green", 0.33), ("teal", 0.47),
           ("blue", 0.62), ("purple", 0.75), ("pink", 0.9)]
TOPICS = [("nature", "at the beach"), ("nature", "in a forest"), ("nature", "on a mountain"),
          ("home", "in a kitchen"), ("home", "in a bedroom"), ("home", "in an office"),
          ("city", "on a busy street"), ("city", "in a train station"), ("city", "at a market")]
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
SIZE = 224
ROI_ORDER = ["V1", "V2", "V3", "hV4", "LO", "VOT", "semantic"]
# Weights of (low-level, mid-level, shape category, caption topic) per ROI.
ROI_MIX = {
    "V1": (1.0, 0.0, 0.0, 0.0),
    "V2": (0.8, 0.2, 0.0, 0.0),
    "V3": (0.6, 0.4, 0.0, 0.0),
    "hV4": (0.3, 0.6, 0.1, 0.0),
    "LO": (0.05, 0.35, 0.6, 0.0),
    "VOT": (0.0, 0.1, 0.9, 0.0),
    "semantic": (0.0, 0.0, 0.15, 0.85),
}
ROI_SNR = {"V1": 1.0, "V2": 0.9, "V3": 0.8, "hV4": 0.7, "LO": 0.7, "VOT": 0.7, "semantic": 0.7}


def _hsv(h: float, s: float, v: float) -> tuple[int, int, int]:
    import colorsys

    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _shape_polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]] | None:
    def rot(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        c, s = math.cos(angle), math.sin(angle)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in points]

    if kind == "square":
        return rot([(-r, -r), (r, -r), (r, r), (-r, r)])
    if kind == "triangle":
        return rot([(0, -r), (r * 0.95, r * 0.8), (-r * 0.95, r * 0.8)])
    if kind == "diamond":
        return rot([(0, -r), (r * 0.6, 0), (0, r), (-r * 0.6, 0)])
    if kind == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.42
            a = math.pi * i / 5 - math.pi / 2
            pts.append((rad * math.cos(a), rad * math.sin(a)))
        return rot(pts)
    if kind == "cross":
        w = r * 0.35
        return rot([(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)])
    if kind == "arrow":
        return rot([(-r, -r * 0.25), (r * 0.2, -r * 0.25), (r * 0.2, -r * 0.6), (r, 0), (r * 0.2, r * 0.6),
                    (r * 0.2, r * 0.25), (-r, r * 0.25)])
    return None


def _render(p: dict[str, Any]):
    """Draw one stimulus from its parameters (deterministic)."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(p["seed"])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    theta = math.radians(p["orientation"])
    phase = (xx * math.cos(theta) + yy * math.sin(theta)) * p["frequency"] * 2 * math.pi
    tex = p["texture"]
    if tex == "plain":
        pattern = np.zeros_like(xx)
    elif tex == "striped":
        pattern = np.sign(np.sin(phase))
    elif tex == "checkered":
        other = (-xx * math.sin(theta) + yy * math.cos(theta)) * p["frequency"] * 2 * math.pi
        pattern = np.sign(np.sin(phase) * np.sin(other))
    elif tex == "dotted":
        other = (-xx * math.sin(theta) + yy * math.cos(theta)) * p["frequency"] * 2 * math.pi
        pattern = ((np.cos(phase) + np.cos(other)) > 1.2).astype(np.float32) * 2 - 1
    else:
        coarse = rng.standard_normal((max(2, p["frequency"]), max(2, p["frequency"])))
        pattern = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize((SIZE, SIZE), Image.BICUBIC))
        pattern = np.clip(pattern / (np.abs(pattern).max() + 1e-6), -1, 1)
    base = np.array(_hsv(p["bg_hue"], 0.55, p["bg_value"]), dtype=np.float32)
    img = base[None, None, :] * (1 + p["contrast"] * pattern[..., None])
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = _hsv(p["obj_hue"], 0.85, 0.95)
    for (cx, cy), angle in zip(p["positions"], p["angles"]):
        r = p["size"]
        poly = _shape_polygon(p["shape"], cx, cy, r, angle)
        if poly is not None:
            draw.polygon(poly, fill=colour, outline=(20, 20, 20))
        elif p["shape"] == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour, outline=(20, 20, 20))
        else:  # ring
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(3, int(r * 0.35)))
    return image


def _caption(p: dict[str, Any]) -> str:
    size_word = "small" if p["size"] < 26 else ("large" if p["size"] > 36 else "medium")
    noun = p["shape"] + ("es" if p["shape"] in ("cross",) else "s") if p["count"] > 1 else p["shape"]
    obj_colour = COLOURS[p["obj_colour"]][0]
    bg_colour = COLOURS[p["bg_colour"]][0]
    return (f"{COUNT_WORDS[p['count']]} {size_word} {obj_colour} {noun} on a {p['texture']} {bg_colour} "
            f"background, {TOPICS[p['topic']][1]}")


def _pixel_statistics(image) -> np.ndarray:
    """Low-level image statistics: colour, luminance contrast, oriented energy, spatial frequency."""
    a = np.asarray(image, dtype=np.float32) / 255.0
    lum = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.gradient(lum)
    energies = []
    for deg in (0, 45, 90, 135):
        t = math.radians(deg)
        energies.append(np.mean((gx * math.cos(t) + gy * math.sin(t)) ** 2))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(lum - lum.mean()))) ** 2
    yy, xx = np.mgrid[-SIZE // 2:SIZE // 2, -SIZE // 2:SIZE // 2]
    radius = np.hypot(yy, xx)
    bands = [np.log1p(spectrum[(radius >= lo) & (radius < hi)].mean()) for lo, hi in ((2, 6), (6, 14), (14, 30), (30, 70))]
    hsv = np.asarray(image.convert("HSV"), dtype=np.float32) / 255.0
    return np.array([*a.mean(axis=(0, 1)), lum.std(), hsv[..., 1].mean(), *np.log(np.array(energies) + 1e-6), *bands],
                    dtype=np.float64)


@lru_cache(maxsize=2)
def _fsaverage5_rois(seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """ROI masks over both hemispheres, laid out as rings around the occipital pole of the sphere."""
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")
    rois: dict[str, list[np.ndarray]] = {name: [] for name in ROI_ORDER}
    hemis, vertex = [], []
    for hemi in ("left", "right"):
        sphere = np.asarray(mesh["sphere"].parts[hemi].coordinates, dtype=np.float64)
        pial = np.asarray(mesh["pial"].parts[hemi].coordinates, dtype=np.float64)
        unit = sphere / np.linalg.norm(sphere, axis=1, keepdims=True)
        pole = unit[np.argmin(pial[:, 1])]
        angle = np.degrees(np.arccos(np.clip(unit @ pole, -1, 1)))
        ventral = pial[:, 2] < np.percentile(pial[:, 2], 40)
        n = len(sphere)
        rings = {"V1": angle < 11, "V2": (angle >= 11) & (angle < 18), "V3": (angle >= 18) & (angle < 25)}
        mid = (angle >= 25) & (angle < 36)
        high = (angle >= 36) & (angle < 52)
        rings["hV4"] = mid & ventral
        rings["LO"] = mid & ~ventral
        rings["VOT"] = high & ventral
        rings["semantic"] = (angle >= 40) & (angle < 60) & ~ventral & (pial[:, 2] < np.percentile(pial[:, 2], 75))
        for name in ROI_ORDER:
            rois[name].append(rings[name])
        hemis.append(np.full(n, "left" if hemi == "left" else "right"))
        vertex.append(np.arange(n))
    masks = {name: np.concatenate(parts) for name, parts in rois.items()}
    return masks, np.concatenate(hemis), np.concatenate(vertex)


class DemoDataset:
    """Simulated NSD-shaped fMRI on fsaverage5 with planted layer-to-ROI structure (see module docs)."""

    name = "demo"
    modalities = ("image", "text")
    space = "fsaverage5"

    def __init__(
        self,
        n_subjects: Annotated[int, Option("number of simulated subjects")] = 2,
        n_train: Annotated[int, Option("training images per subject")] = 450,
        n_test: Annotated[int, Option("shared test images")] = 120,
        n_repetitions: Annotated[int, Option("repetitions per image")] = 3,
        noise: Annotated[float, Option("noise standard deviation per trial")] = 1.0,
        seed: Annotated[int, Option("generator seed")] = 0,
        n_sessions: Annotated[int, Option(
            "consecutive sessions the trials are cut into (trial_groups['session'])")] = 10,
        shared_topography: Annotated[float, Option(
            "fraction of mixing-weight variance common to all subjects at a vertex "
            "(0: shared latent factors, no vertex correspondence)")] = 0.0,
        local_path: Annotated[str | None, Option("unused: the demo is generated")] = None,
        as_rdms: Annotated[bool, Option(
            "provide brain RDMs instead of responses: per subject and ROI, the correlation-distance RDM "
            "(1 − Pearson r) of the repetition-averaged responses to the shared test images")] = False,
    ) -> None:
        if n_subjects < 1 or n_train < 10 or n_test < 10 or n_repetitions < 2:
            raise WorkbenchError("demo needs n_subjects ≥ 1, n_train ≥ 10, n_test ≥ 10 and n_repetitions ≥ 2")
        n_trials = (n_train + n_test) * n_repetitions
        if not 1 <= n_sessions <= n_trials:
            raise WorkbenchError(f"demo n_sessions={n_sessions} must lie between 1 and the {n_trials} trials "
                                 "of a subject")
        if not 0.0 <= shared_topography <= 1.0:
            raise WorkbenchError(f"demo shared_topography={shared_topography} must lie in [0, 1] (the fraction "
                                 "of mixing-weight variance common to all subjects)")
        self.n_subjects, self.n_train, self.n_test = n_subjects, n_train, n_test
        self.n_repetitions, self.noise, self.seed = n_repetitions, float(noise), seed
        self.n_sessions, self.shared_topography = int(n_sessions), float(shared_topography)
        self.local_path = local_path
        self.as_rdms = bool(as_rdms)
        self.provides = "rdms" if self.as_rdms else "responses"
        pool = n_test + n_train + (n_subjects - 1) * (n_train // 3)
        self.n_images = pool

    # ---- stimuli ---------------------------------------------------------------------------
    @cached_property
    def parameters(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng(self.seed)
        params = []
        for _ in range(self.n_images):
            count = int(rng.integers(1, 4))
            size = float(rng.uniform(18, 44))
            positions = [(float(rng.uniform(size + 4, SIZE - size - 4)), float(rng.uniform(size + 4, SIZE - size - 4)))
                         for _ in range(count)]
            bg_colour, obj_colour = (int(c) for c in rng.choice(len(COLOURS), 2, replace=False))
            params.append({
                "seed": int(rng.integers(2**31)), "shape": SHAPES[int(rng.integers(len(SHAPES)))], "count": count,
                "size": size, "positions": positions, "angles": [float(rng.uniform(-0.3, 0.3)) for _ in range(count)],
                "texture": TEXTURES[int(rng.integers(len(TEXTURES)))], "orientation": float(rng.choice([0, 45, 90, 135])),
                "frequency": int(rng.choice([3, 6, 12, 24])), "contrast": float(rng.uniform(0.1, 0.6)),
                "bg_colour": bg_colour, "bg_hue": COLOURS[bg_colour][1], "bg_value": float(rng.uniform(0.35, 0.95)),
                "obj_colour": obj_colour, "obj_hue": COLOURS[obj_colour][1], "topic": int(rng.integers(len(TOPICS))),
            })
        return params

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return tuple(f"demo-{i:05d}" for i in range(self.n_images))

    def _index(self, ids: Sequence[str]) -> list[int]:
        position = {s: i for i, s in enumerate(self.ids)}
        try:
            return [position[s] for s in ids]
        except KeyError as exc:
            raise WorkbenchError(f"stimulus {exc.args[0]!r} is not a demo stimulus (ids look like 'demo-00042')") from None

    def render(self, ids: Sequence[str]) -> list:
        return [_render(self.parameters[i]) for i in self._index(ids)]

    def captions(self, ids: Sequence[str]) -> list[str]:
        return [_caption(self.parameters[i]) for i in self._index(ids)]

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        modality = modality or "image"
        if modality not in self.modalities:
            raise WorkbenchError(f"demo has {' and '.join(self.modalities)} stimuli, not {modality!r}")
        loader = self.render if modality == "image" else self.captions
        return StimulusSet(self.ids, modality, loader, digest("demo", self.fingerprint(), modality),
                           categories=tuple(p["shape"] for p in self.parameters))

    def subjects(self) -> list[str]:
        return [str(i + 1) for i in range(self.n_subjects)]

    def fingerprint(self) -> str:
        return digest("demo-v3", self.n_subjects, self.n_train, self.n_test, self.n_repetitions, self.noise, self.seed,
                      self.n_sessions, self.shared_topography, *(["rdms"] if self.as_rdms else []))

    # ---- features of the generating model ----------------------------------------------------
    @cached_property
    def feature_spaces(self) -> dict[str, np.ndarray]:
        """The four standardised feature spaces the responses are generated from (n_images × d)."""
        low = np.stack([_pixel_statistics(img) for img in self.render(self.ids)])
        mid = np.stack([
            np.concatenate([0.5 * np.eye(len(TEXTURES))[TEXTURES.index(p["texture"])],
                            [math.cos(math.radians(2 * p["orientation"])), math.sin(math.radians(2 * p["orientation"])),
                             math.log2(p["frequency"]), p["contrast"], p["size"] * p["count"]]])
            for p in self.parameters])
        shape = np.stack([np.eye(len(SHAPES))[SHAPES.index(p["shape"])] for p in self.parameters])
        groups = sorted({g for g, _ in TOPICS})
        topic = np.stack([np.concatenate([np.eye(len(TOPICS))[p["topic"]],
                                          np.eye(len(groups))[groups.index(TOPICS[p["topic"]][0])] * 1.5])
                          for p in self.parameters])

        def standardise(f: np.ndarray) -> np.ndarray:
            f = f - f.mean(axis=0)
            sd = f.std(axis=0)
            return f / np.where(sd > 0, sd, 1.0)

        return {"low": standardise(low), "mid": standardise(mid), "shape": standardise(shape), "topic": standardise(topic)}

    # ---- recordings ------------------------------------------------------------------------
    def _design(self, subject: str) -> tuple[np.ndarray, np.ndarray]:
        s = self.subjects().index(subject)
        test = np.arange(self.n_test)
        start = self.n_test + s * (self.n_train // 3)
        train = np.arange(start, start + self.n_train)
        return train, test

    def recording(self, subject: str) -> Recording:
        if subject not in self.subjects():
            raise WorkbenchError(f"demo has subjects {', '.join(self.subjects())}, not {subject!r}")
        rois, hemis, vertex = _fsaverage5_rois(self.seed)
        n_units = len(hemis)
        rng = np.random.default_rng([self.seed, int(subject)])
        common = np.random.default_rng([self.seed, 0, 7]) if self.shared_topography > 0 else None
        own, shared = math.sqrt(1.0 - self.shared_topography), math.sqrt(self.shared_topography)
        train, test = self._design(subject)
        images = np.concatenate([train, test])
        spaces = {k: v[images] for k, v in self.feature_spaces.items()}
        signal = np.zeros((len(images), n_units), dtype=np.float64)
        for name in ROI_ORDER:
            mask = rois[name]
            for weight, key in zip(ROI_MIX[name], ("low", "mid", "shape", "topic")):
                if weight == 0:
                    continue
                f = spaces[key]
                w = rng.standard_normal((f.shape[1], int(mask.sum())))
                if common is not None:
                    w = own * w + shared * common.standard_normal(w.shape)
                signal[:, mask] += math.sqrt(weight) * (f @ (w / math.sqrt(f.shape[1])))
            signal[:, mask] *= ROI_SNR[name]
        order = rng.permutation(np.repeat(images, self.n_repetitions))
        row = np.empty(self.n_images, dtype=np.intp)
        row[images] = np.arange(len(images))
        baseline = rng.uniform(-0.5, 0.5, n_units)
        noise = self.noise * rng.standard_normal((len(order), n_units))
        responses = (signal[row[order]] + baseline + noise).astype(np.float32)
        sessions = np.arange(len(order)) * self.n_sessions // len(order) + 1
        from brain_workbench.sdk.numerics import noise_ceiling_nsd

        ids = np.asarray(self.ids)
        return Recording(
            dataset=self.name, subject=subject, responses=responses, trial_stimulus_ids=ids[order],
            units=Units(space=self.space, n=n_units, rois=rois, hemisphere=hemis, vertex=vertex),
            splits={"train": ids[train], "test": ids[test]}, trial_groups={"session": sessions.astype(str)},
            noise_ceiling=noise_ceiling_nsd(responses, ids[order], n_average=1).astype(np.float32),
            preprocessing=[{"step": "simulate", "generator": "demo-v3", "seed": self.seed, "noise": self.noise,
                            "n_sessions": self.n_sessions, "shared_topography": self.shared_topography},
                           {"step": "noise_ceiling", "method": "ncsnr", "n": 1}],
        )

    def rdms(self, subject: str) -> list[BrainRDMs]:
        """One correlation-distance RDM per ROI over the shared test images (the same stimuli for every
        subject, so RDM noise ceilings apply), from the repetition-averaged simulated responses."""
        rec = self.recording(subject).average_repetitions()
        test = np.flatnonzero(np.isin(rec.trial_stimulus_ids, rec.splits["test"]))
        test = test[np.argsort(rec.trial_stimulus_ids[test])]  # one stimulus order for every subject
        ids = rec.trial_stimulus_ids[test]
        out = []
        for roi, mask in rec.units.rois.items():
            patterns = rec.responses[test][:, mask].astype(np.float64)
            out.append(BrainRDMs(dataset=self.name, subject=subject, roi=roi, stimulus_ids=ids,
                                 rdm=1.0 - np.corrcoef(patterns), distance="correlation"))
        return out

    def fetch(self, dest: str | Path, accept_terms: bool = False, **options: Any) -> Path:
        """Nothing to download: write the stimuli as PNG files and a captions CSV into ``dest``."""
        dest = Path(dest)
        (dest / "images").mkdir(parents=True, exist_ok=True)
        with open(dest / "captions.csv", "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["stimulus_id", "caption"])
            for sid, image, caption in zip(self.ids, self.render(self.ids), self.captions(self.ids)):
                image.save(dest / "images" / f"{sid}.png")
                writer.writerow([sid, caption])
        return dest


@hookimpl
def register_datasets(register) -> None:
    register(
        "demo", DemoDataset,
        description="Simulated NSD-shaped fMRI on fsaverage5 with planted layer-to-ROI structure (offline default).",
        modalities=("image", "text"), citation="brain-workbench demo generator v3",
    )
