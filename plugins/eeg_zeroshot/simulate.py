"""``things-eeg2-sim``: simulated THINGS-EEG2 EEG driven by real CLIP ViT-L/14 embeddings (offline stand-in).

Generating model (documented in ``docs/things-eeg2-zeroshot.md``):

* **Embeddings.** Test stimuli are the first ``n_test`` of the 200 real THINGS-EEG2 test images (their
  shipped CLIP ViT-L/14 embeddings ``e`` and concept centres ``c``); training concepts get centres drawn
  near random real centres and images scattered around them (``embeddings.simulate_embeddings``), so
  the 200-way task has the real concept-similarity structure.
* **Fixed random mapping.** ``z = standardise((e − ē) P)`` with ``P`` a seeded Gaussian 768 × ``n_latent``
  matrix, the same for every subject: the latent factors the brain "sees".
* **Temporal response profile.** Factor ``k`` is expressed as a Gaussian bump ``h_k(t)`` peaking at a
  latency drawn uniformly inside ``response_window`` (width 20–50 ms), so stimulus information exists
  only inside the planted window; a stimulus-independent evoked response (P1/N1-like) rides on top.
* **Space.** Subject ``s`` projects factors to channels with ``A_s = √(1−ρ)·own + √ρ·common`` (Gaussian,
  ρ = ``shared_topography``) scaled by a scalp gain (occipital/parieto-occipital 1, parietal 0.8,
  centro-parietal/temporal 0.4, elsewhere 0.15), so posterior channels carry the signal.
* **Trials.** ``x_trial(c, t) = snr·Σ_k A_s[c,k]·z_k·h_k(t − δ_trial)/√n_latent + erp(c, t) + noise·ε`` with
  a per-trial latency jitter ``δ ~ N(0, jitter)`` and white Gaussian noise ``ε``; training images are shown
  ``train_reps`` times, test images ``test_reps`` times, image-major as in the release.
* **Layouts.** ``17x100``: the official preprocessed release (17 posterior channels, 100 Hz, −0.2–0.79 s);
  ``63x250``: NICE/ATM's own preprocessing (63 channels, 250 Hz, 0–0.996 s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import Option, Recording, StimulusSet, Units, WorkbenchError, digest
from brain_workbench_plugins.eeg_zeroshot.embeddings import WIDTH, assets_digest, simulate_embeddings

NAME = "things-eeg2-sim"
GENERATOR = "things-eeg2-sim-v1"
POSTERIOR_17 = ("Pz", "P3", "P7", "O1", "Oz", "O2", "P4", "P8", "P1", "P5", "PO7", "PO3", "POz", "PO4", "PO8",
                "P6", "P2")
CHANNELS_63 = ("Fp1", "Fp2", "AF7", "AF3", "AFz", "AF4", "AF8", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6",
               "F8", "FT9", "FT7", "FC5", "FC3", "FC1", "FC2", "FC4", "FC6", "FT8", "FT10", "T7", "C5", "C3",
               "C1", "Cz", "C2", "C4", "C6", "T8", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4", "CP6",
               "TP8", "TP10", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4",
               "PO8", "O1", "Oz", "O2")
REGIONS = (("PO", "parieto-occipital", 1.0), ("O", "occipital", 1.0), ("CP", "centro-parietal", 0.4),
           ("TP", "temporo-parietal", 0.4), ("P", "parietal", 0.8), ("T", "temporal", 0.4))


def scalp_region(name: str) -> tuple[str, float]:
    """ROI name and signal gain of a 10-20 channel from its letter prefix (posterior channels carry the signal)."""
    for prefix, region, gain in REGIONS:
        if name.startswith(prefix) and not name[len(prefix):len(prefix) + 1].isupper():
            return region, gain
    return "anterior", 0.15


@dataclass(frozen=True)
class Layout:
    """Channels and sampling of one preprocessing preset."""

    name: str
    channels: tuple[str, ...]
    sfreq: float
    tmin: float
    n_times: int
    source: str

    @property
    def times(self) -> np.ndarray:
        return np.round(self.tmin + np.arange(self.n_times) / self.sfreq, 6)

    def preset(self) -> dict[str, Any]:
        """The preprocessing preset as recorded in provenance."""
        return {"layout": self.name, "n_channels": len(self.channels), "channels": list(self.channels),
                "sfreq_hz": self.sfreq, "window_s": [float(self.times[0]), float(self.times[-1])],
                "n_times": self.n_times, "source": self.source}


LAYOUTS = {
    "17x100": Layout("17x100", POSTERIOR_17, 100.0, -0.2, 100, "official preprocessed release (Gifford et al. 2022)"),
    "63x250": Layout("63x250", CHANNELS_63, 250.0, 0.0, 250, "NICE/ATM preprocessing (63 channels, 0-1 s, 250 Hz)"),
}


def get_layout(name: str) -> Layout:
    """One of the two supported layouts, or one sentence naming them."""
    if name not in LAYOUTS:
        raise WorkbenchError(f"EEG layout {name!r} is neither of the two supported ones: 17x100 (17 posterior "
                             "channels × 100 samples, the official preprocessed release) or 63x250 (63 channels "
                             "× 250 samples, NICE/ATM)")
    return LAYOUTS[name]


def _sim_image(embedding: np.ndarray, centre: np.ndarray, sid: str):
    """A 32×32 swatch standing in for the photograph; it carries its embeddings for the ``nice-clip`` encoder."""
    from PIL import Image

    colour = tuple(int(v) for v in np.clip(128 + 2000 * embedding[:3], 0, 255))
    image = Image.new("RGB", (32, 32), colour)  # type: ignore[arg-type]
    image.info["nice_clip"] = {"stimulus_id": sid, "image": embedding, "centre": centre}
    return image


class ThingsEEG2SimDataset:
    """Simulated THINGS-EEG2 (trials × channels × times) with planted CLIP-driven structure (see module docs)."""

    name = NAME
    modalities = ("image",)

    def __init__(
        self,
        layout: Annotated[str, Option("17x100 (official release) or 63x250 (NICE/ATM)")] = "17x100",
        n_subjects: Annotated[int, Option("simulated subjects")] = 2,
        n_train_concepts: Annotated[int, Option("training concepts (THINGS-EEG2: 1654)")] = 200,
        images_per_concept: Annotated[int, Option("training images per concept (THINGS-EEG2: 10)")] = 10,
        n_test: Annotated[int, Option("test concepts, one image each (THINGS-EEG2: 200)")] = 200,
        train_reps: Annotated[int, Option("repetitions of each training image (THINGS-EEG2: 4)")] = 4,
        test_reps: Annotated[int, Option("repetitions of each test image (THINGS-EEG2: 80)")] = 20,
        n_latent: Annotated[int, Option("latent factors of the fixed random embedding → brain mapping")] = 32,
        snr: Annotated[float, Option("amplitude of the stimulus-driven signal")] = 1.0,
        noise: Annotated[float, Option("SD of the white noise per channel and sample")] = 1.0,
        jitter: Annotated[float, Option("SD of the per-trial response latency jitter (s)")] = 0.02,
        response_window: Annotated[Sequence[float], Option(
            "the window (s) holding the stimulus-specific response peaks")] = (0.1, 0.3),
        concept_spread: Annotated[float, Option(
            "per-dimension SD of a training concept's centre around its real anchor centre")] = 0.02,
        shared_topography: Annotated[float, Option("fraction of the channel mixing common to all subjects")] = 0.5,
        seed: Annotated[int, Option("generator seed")] = 0,
        local_path: Annotated[str | None, Option("unused: the data are generated")] = None,
    ) -> None:
        self.layout = layout_ = get_layout(layout)
        window = tuple(float(v) for v in response_window)
        times = layout_.times
        if len(window) != 2 or not times[0] <= window[0] < window[1] <= times[-1]:
            raise WorkbenchError(f"response_window {list(window)} must be [start, end] inside the layout's "
                                 f"{times[0]:g}–{times[-1]:g} s")
        if min(n_subjects, n_train_concepts, images_per_concept, train_reps, n_latent) < 1 or test_reps < 2:
            raise WorkbenchError("things-eeg2-sim needs at least 1 subject, training concept, image per concept, "
                                 "training repetition and latent factor, and test_reps ≥ 2")
        if not 0.0 <= shared_topography <= 1.0:
            raise WorkbenchError(f"shared_topography={shared_topography} must lie in [0, 1]")
        self.n_subjects, self.n_train_concepts, self.images_per_concept = n_subjects, n_train_concepts, images_per_concept
        self.n_test, self.train_reps, self.test_reps, self.n_latent = n_test, train_reps, test_reps, n_latent
        self.snr, self.noise, self.jitter, self.window = float(snr), float(noise), float(jitter), window
        self.concept_spread, self.shared_topography, self.seed = float(concept_spread), float(shared_topography), seed
        self.local_path = local_path
        self.embeddings = simulate_embeddings(n_test, n_train_concepts, images_per_concept, self.concept_spread, seed)

    def __repr__(self) -> str:
        return f"ThingsEEG2SimDataset(layout={self.layout.name!r}, n_test={self.n_test}, seed={self.seed})"

    # ---- stimuli ---------------------------------------------------------------------------
    @cached_property
    def train_ids(self) -> tuple[str, ...]:
        return tuple(f"sim_c{c + 1:04d}_{i + 1:02d}" for c in range(self.n_train_concepts)
                     for i in range(self.images_per_concept))

    @cached_property
    def test_ids(self) -> tuple[str, ...]:
        return tuple(f"sim_test_{j + 1:03d}" for j in range(self.n_test))

    @cached_property
    def ids(self) -> tuple[str, ...]:
        return self.train_ids + self.test_ids

    def _load_images(self, ids: Sequence[str]) -> list:
        row = {s: i for i, s in enumerate(self.ids)}
        out = []
        for sid in ids:
            if sid not in row:
                raise WorkbenchError(f"{sid!r} is not a things-eeg2-sim stimulus (ids look like 'sim_test_001')")
            i = row[sid]
            out.append(_sim_image(self.embeddings.image[i], self.embeddings.centre[i], sid))
        return out

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        modality = modality or "image"
        if modality != "image":
            raise WorkbenchError(f"things-eeg2-sim has only the image modality, not {modality!r}")
        return StimulusSet(self.ids, "image", self._load_images, digest(NAME, self.fingerprint(), "image"))

    def subjects(self) -> list[str]:
        return [str(s + 1) for s in range(self.n_subjects)]

    def fingerprint(self) -> str:
        return digest(GENERATOR, self.layout.name, self.n_subjects, self.n_train_concepts, self.images_per_concept,
                      self.n_test, self.train_reps, self.test_reps, self.n_latent, self.snr, self.noise, self.jitter,
                      list(self.window), self.concept_spread, self.shared_topography, self.seed, assets_digest())

    # ---- generating model ------------------------------------------------------------------
    @cached_property
    def latents(self) -> np.ndarray:
        """The stimulus factors ``z`` (stimuli × n_latent) of the fixed random mapping, in ``ids`` order."""
        rng = np.random.default_rng([self.seed, 1])
        projection = rng.standard_normal((WIDTH, self.n_latent)) / math.sqrt(WIDTH)
        e = self.embeddings.image.astype(np.float64)
        z = (e - e.mean(axis=0)) @ projection
        return (z - z.mean(axis=0)) / z.std(axis=0)

    @cached_property
    def profiles(self) -> tuple[np.ndarray, np.ndarray]:
        """Peak latency (s) and width (s) of each factor's temporal response."""
        rng = np.random.default_rng([self.seed, 2])
        width = rng.uniform(0.02, 0.05, self.n_latent)
        lo, hi = self.window
        return rng.uniform(lo, hi, self.n_latent), width

    def mixing(self, subject: str) -> np.ndarray:
        """Channel weights of each factor for one subject (channels × n_latent)."""
        own = np.random.default_rng([self.seed, 3, int(subject)]).standard_normal((len(self.layout.channels),
                                                                                   self.n_latent))
        common = np.random.default_rng([self.seed, 4]).standard_normal(own.shape)
        gain = np.array([scalp_region(c)[1] for c in self.layout.channels])
        rho = self.shared_topography
        return (math.sqrt(1 - rho) * own + math.sqrt(rho) * common) * gain[:, None]

    def _erp(self, gain: np.ndarray) -> np.ndarray:
        t = self.layout.times
        wave = 1.5 * np.exp(-0.5 * ((t - 0.1) / 0.02) ** 2) - 2.0 * np.exp(-0.5 * ((t - 0.17) / 0.03) ** 2)
        return gain[:, None] * wave[None, :]

    def recording(self, subject: str) -> Recording:
        """One subject's trials × channels × times, image-major (training then test) as in the release."""
        if subject not in self.subjects():
            raise WorkbenchError(f"things-eeg2-sim has subjects {', '.join(self.subjects())}, not {subject!r}")
        n_train = len(self.train_ids)
        rows = np.concatenate([np.repeat(np.arange(n_train), self.train_reps),
                               np.repeat(n_train + np.arange(self.n_test), self.test_reps)])
        rng = np.random.default_rng([self.seed, 5, int(subject)])
        A = self.mixing(subject)
        gain = np.abs(A).mean(axis=1)
        erp = self._erp(gain / gain.max())
        latency, width = self.profiles
        t = self.layout.times
        z = self.latents
        out = np.empty((len(rows), A.shape[0], len(t)), dtype=np.float32)
        scale = self.snr / math.sqrt(self.n_latent)
        for start in range(0, len(rows), 2048):
            block = rows[start:start + 2048]
            delta = self.jitter * rng.standard_normal(len(block))
            H = np.exp(-0.5 * ((t[None, None, :] - delta[:, None, None] - latency[None, :, None])
                               / width[None, :, None]) ** 2)
            signal = np.einsum("ck,nk,nkt->nct", A, z[block], H, optimize=True)
            noise = rng.standard_normal(signal.shape)
            out[start:start + len(block)] = scale * signal + erp[None] + self.noise * noise
        ids = np.asarray(self.ids)
        names = list(self.layout.channels)
        regions = [scalp_region(n)[0] for n in names]
        rois = {r: np.array([x == r for x in regions]) for r in dict.fromkeys(regions)}
        step = {"step": "simulate", "generator": GENERATOR, "seed": self.seed, "embeddings": "CLIP ViT-L/14 "
                "(NICE-EEG dnn_feature, shipped)", "assets_sha256_16": assets_digest(), **self.layout.preset(),
                "response_window_s": list(self.window), "n_latent": self.n_latent, "snr": self.snr,
                "noise": self.noise, "jitter_s": self.jitter, "repetitions": {"training": self.train_reps,
                                                                              "test": self.test_reps},
                "order": "image-major (training then test)"}
        return Recording(dataset=NAME, subject=subject, responses=out, trial_stimulus_ids=ids[rows],
                         units=Units(space="eeg-10-20", n=len(names), names=np.asarray(names), rois=rois),
                         splits={"train": np.asarray(self.train_ids), "test": np.asarray(self.test_ids)},
                         times=t.astype(np.float64), preprocessing=[step])

    def fetch(self, dest: str | Path, accept_terms: bool = False, **options: Any) -> Path:
        """Nothing to download: the data are generated from the shipped embeddings."""
        return Path(dest)
