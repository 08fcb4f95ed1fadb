"""What every diffusion generator shares: options, local loading, input checks, batching, best-of-N, fingerprints.

A backend subclasses :class:`DiffusionGenerator` and fills in how its diffusers pipeline is loaded
(``_load_pipeline``), which embedding shape its folder declares (``_config_shapes``), how one batch of
rows is generated (``_generate_batch``) and, where the pipeline carries a CLIP image encoder, how
images are embedded for best-of-N ranking (``_embed_images``). Torch and diffusers are imported
inside methods, so registering the plugin stays cheap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np

from brain_workbench.sdk import Option, WorkbenchError, build_encoder, digest

CODE_VERSION = "1"
DTYPES = ("fp32", "fp16", "bf16")
DIGESTS = ("stat", "content")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack", ".h5")
RESAMPLE = "bicubic"  # PIL filter for init images resized to the generation size

# Widths of the image embeddings (the projected CLS output, ``image_embeds``) of the CLIP towers the
# public pipelines were trained on; keyed by open_clip architecture name.
KNOWN_WIDTHS = {"ViT-L-14": 768, "ViT-H-14": 1024, "ViT-bigG-14": 1280}

COMMON_OPTIONS: dict[str, dict[str, Any]] = {
    "path": {"type": "str", "default": None,
             "help": "local diffusers folder of the pipeline (model_index.json + component folders); never downloaded"},
    "embedding_space": {"type": "str", "default": None,
                        "help": "encoder whose image embedding the pipeline was trained on, as "
                                "'<open_clip model>/<pretrained tag>' (the clip encoder's options)"},
    "steps": {"type": "int", "default": 50, "help": "denoising steps (before strength is applied)"},
    "guidance_scale": {"type": "float", "default": 7.5, "help": "classifier-free guidance scale (1 disables it)"},
    "size": {"type": "int", "default": None, "help": "output height and width in pixels (default: the pipeline's own)"},
    "dtype": {"type": "str", "default": "fp32", "choices": list(DTYPES),
              "help": "weights and activations: fp32, fp16 (GPU only) or bf16"},
    "device": {"type": "str", "default": "auto", "help": "cpu, cuda, mps or auto"},
    "batch_size": {"type": "int", "default": 4, "help": "rows (inputs × candidates) denoised together"},
    "seed": {"type": "int", "default": 0, "help": "seed used when generate() is called without one"},
    "best_of": {"type": "int", "default": 1,
                "help": "candidates per input; the one whose image embedding is most similar (cosine) to the "
                        "decoded embedding is kept (MindEye2)"},
    "rank_with": {"type": "str", "default": "pipeline",
                  "help": "image encoder that ranks candidates: 'pipeline' (the pipeline's own CLIP image encoder) "
                          "or a registered encoder name, e.g. clip"},
    "rank_options": {"type": "dict", "default": {}, "help": "options of the ranking encoder (a dict or JSON text)"},
    "rank_layer": {"type": "str", "default": "embedding", "help": "layer of the ranking encoder compared with the embedding"},
    "cpu_offload": {"type": "bool", "default": False,
                    "help": "diffusers enable_model_cpu_offload (GPU only; needs accelerate, "
                            "the 'offload' extra of brain-workbench)"},
    "variant": {"type": "str", "default": None, "help": "weight file variant in the folder, e.g. fp16"},
    "digest": {"type": "str", "default": "stat", "choices": list(DIGESTS),
               "help": "folder digest for the fingerprint: 'stat' hashes config files and the size and mtime of weight "
                       "files, 'content' hashes every byte"},
}

_TYPES = {"int": int, "float": float, "str": str, "bool": bool, "dict": dict}


def options_signature(table: Mapping[str, Mapping[str, Any]]) -> inspect.Signature:
    """The factory signature the registry reads (types, defaults, help, choices), derived from an options table.

    Backends share and extend one table (:func:`merge_options`), so the table is their single source of
    truth and ``workbench generators info`` and option validation see exactly it.
    """
    params = []
    for key, spec in table.items():
        kind = _TYPES.get(spec.get("type", "str"), Any)
        hint = Annotated[kind | None if spec.get("default") is None else kind,
                         Option(spec.get("help", ""), choices=tuple(spec["choices"]) if spec.get("choices") else None)]
        params.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=spec.get("default"),
                                        annotation=hint))
    return inspect.Signature(params)


def merge_options(*tables: Mapping[str, Mapping[str, Any]], **defaults: Any) -> dict[str, dict[str, Any]]:
    """Option tables merged left to right, with some defaults overridden (a backend's own values)."""
    out: dict[str, dict[str, Any]] = {}
    for table in tables:
        for key, spec in table.items():
            out[key] = dict(spec)
    for key, value in defaults.items():
        out[key]["default"] = value
    return out


def _coerce(owner: str, key: str, spec: Mapping[str, Any], value: Any) -> Any:
    """One option value checked against its schema entry (type, choices); None stays None."""
    if value is None:
        return None
    kind = spec.get("type", "str")
    try:
        if kind == "dict":
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            if not isinstance(value, dict):
                raise TypeError
        elif kind == "bool":
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                value = value.lower() in ("true", "1", "yes")
            value = bool(value)
        elif kind == "int":
            if isinstance(value, bool) or float(value) != int(float(value)):
                raise ValueError
            value = int(float(value))
        else:
            value = _TYPES[kind](value)
    except (TypeError, ValueError, json.JSONDecodeError):
        raise WorkbenchError(f"{owner}: option {key}={value!r} is not a valid {kind}") from None
    if spec.get("choices") and value not in spec["choices"]:
        raise WorkbenchError(f"{owner}: option {key}={value!r} is not supported; choose one of "
                             f"{', '.join(map(repr, spec['choices']))}")
    return value


def folder_digest(root: Path, mode: str = "stat") -> str:
    """SHA-256 over a pipeline folder: every non-weight file by content; weight files by size and mtime ("stat")
    or by content ("content"). Hidden entries (``.cache`` written by ``huggingface-cli download``) are skipped.
    """
    h = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    for path in files:
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        if mode == "stat" and path.suffix in WEIGHT_SUFFIXES:
            h.update(f"{rel}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            continue
        h.update(f"{rel}|{stat.st_size}|".encode())
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\n")
    return h.hexdigest()[:32]


def file_digest(path: Path, mode: str = "stat") -> str:
    """A single file's digest with the same convention as :func:`folder_digest`."""
    stat = path.stat()
    if mode == "stat" and path.suffix in WEIGHT_SUFFIXES:
        return hashlib.sha256(f"{path.name}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:32]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:32]


def dtype_kwarg(library: str, dtype: Any) -> dict[str, Any]:
    """``from_pretrained``'s dtype keyword: ``dtype`` where the library has it (diffusers ≥ 0.36, transformers
    ≥ 4.56), else the older ``torch_dtype`` (both newer libraries deprecate the old name)."""
    from importlib.metadata import version

    from packaging.version import Version

    new = {"diffusers": "0.36", "transformers": "4.56"}[library]
    return {"dtype" if Version(version(library)) >= Version(new) else "torch_dtype": dtype}


def row_seed(seed: int, row: int, candidate: int) -> int:
    """Seed of one output row: independent of batching and of the other rows (NumPy SeedSequence)."""
    return int(np.random.SeedSequence([int(seed) & (2**63 - 1), row, candidate]).generate_state(1, np.uint64)[0] >> 1)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows of two (n, d) arrays."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    num = (a * b).sum(1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return num / np.where(den == 0, 1.0, den)


class DiffusionGenerator:
    """A diffusers pipeline in a local folder as a workbench generator (embeddings → uint8 images)."""

    name = "diffusion"
    OPTIONS: dict[str, dict[str, Any]] = COMMON_OPTIONS
    #: human name of the release(s) the folder should hold, for messages
    release = "a diffusers pipeline"
    #: model_index.json ``_class_name`` values this backend accepts
    pipeline_classes: tuple[str, ...] = ()
    #: component folders the backend needs in the pipeline folder
    required_components: tuple[str, ...] = ()
    supports_init = True
    supports_text = False

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise WorkbenchError(f"{self.name}: unknown option {unknown[0]!r}; its options are: "
                                 f"{', '.join(sorted(self.OPTIONS))}")
        values = {key: spec.get("default") for key, spec in self.OPTIONS.items()}
        values.update(options)
        self.options = {key: _coerce(self.name, key, self.OPTIONS[key], values[key]) for key in self.OPTIONS}
        self.options["rank_options"] = dict(self.options.get("rank_options") or {})
        for key in ("steps", "batch_size", "best_of"):
            if self.options[key] < 1:
                raise WorkbenchError(f"{self.name}: option {key} must be at least 1, got {self.options[key]}")
        if self.options["size"] is not None and (self.options["size"] < 8 or self.options["size"] % 8):
            raise WorkbenchError(f"{self.name}: option size must be a positive multiple of 8, got {self.options['size']}")
        if self.options["guidance_scale"] < 0:
            raise WorkbenchError(f"{self.name}: guidance_scale must be non-negative")
        self.embedding_space = str(self.options["embedding_space"])
        self.pipe: Any = None
        self._ranker: Any = None
        self._fingerprint: str | None = None
        self._shapes: tuple[tuple[int, ...], tuple[int, ...] | None] | None = None
        #: after generate(): chosen candidate and its cosine similarity per input (best_of > 1)
        self.last_selection: dict[str, np.ndarray] | None = None
        self._on_step: Callable[[int], None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={self.options['path']!r}, embedding_space={self.embedding_space!r})"

    # ---- folder ------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        """The pipeline folder, checked to exist and to hold a diffusers pipeline of the expected kind."""
        path = self.options["path"]
        if not path:
            raise WorkbenchError(f"{self.name}: no pipeline folder; download {self.release} once on a machine with "
                                 f"internet (e.g. `hf download REPO --local-dir DIR`) and pass path=DIR")
        root = Path(os.path.expanduser(str(path)))
        index = root / "model_index.json"
        if not index.is_file():
            what = "does not exist" if not root.exists() else "has no model_index.json"
            raise WorkbenchError(f"{self.name}: pipeline folder {root} {what}; put the diffusers folder of "
                                 f"{self.release} there (model_index.json and the "
                                 f"{', '.join(self.required_components)} folders)")
        return root

    def model_index(self) -> dict[str, Any]:
        """The folder's model_index.json, checked for the pipeline class and the component folders."""
        root = self.root
        try:
            index = json.loads((root / "model_index.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkbenchError(f"{self.name}: cannot read {root / 'model_index.json'}: {exc}") from None
        cls = index.get("_class_name")
        if self.pipeline_classes and cls not in self.pipeline_classes:
            raise WorkbenchError(f"{self.name}: {root} holds a {cls} pipeline, not {self.release} "
                                 f"({' / '.join(self.pipeline_classes)}); point path= at the right folder")
        missing = [c for c in self.required_components if not (root / c).is_dir()]
        if missing:
            raise WorkbenchError(f"{self.name}: pipeline folder {root} lacks the component folder(s) "
                                 f"{', '.join(missing)}; copy the complete release of {self.release} there")
        return index

    def read_config(self, component: str, name: str = "config.json") -> dict[str, Any]:
        """One component's JSON config (read without loading weights)."""
        path = self.root / component / name
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise WorkbenchError(f"{self.name}: cannot read {path}: {exc}; the pipeline folder is incomplete") from None

    # ---- embedding space ----------------------------------------------------------------------
    def _config_shapes(self) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """(image embedding shape, text embedding shape or None) as the folder's configs declare them."""
        raise NotImplementedError

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        """Embedding shapes from the configs, checked against the width of the named ``embedding_space``."""
        if self._shapes is None:
            self.model_index()
            image_shape, text_shape = self._config_shapes()
            arch = self.embedding_space.split("/", 1)[0]
            expected = KNOWN_WIDTHS.get(arch)
            if expected is not None and expected != image_shape[-1]:
                raise WorkbenchError(
                    f"{self.name}: the pipeline in {self.root} takes image embeddings of width {image_shape[-1]}, "
                    f"but embedding_space={self.embedding_space!r} ({arch}) gives width {expected}; decode the "
                    f"embedding of the encoder this pipeline was trained on (see docs/generators.md)")
            self._shapes = (tuple(image_shape), tuple(text_shape) if text_shape else None)
        return self._shapes

    @property
    def embedding_shape(self) -> tuple[int, ...]:
        """Shape of one image embedding the pipeline takes: ``(d,)`` pooled, or ``(tokens, d)``."""
        return self.shapes()[0]

    @property
    def embedding_dim(self) -> int:
        """Flattened width of one image embedding row (what a decode cell predicts)."""
        return int(math.prod(self.embedding_shape))

    @property
    def text_embedding_shape(self) -> tuple[int, ...] | None:
        """Shape of one text embedding the pipeline can take, or None when it is text-free."""
        return self.shapes()[1] if self.supports_text else None

    # ---- loading -----------------------------------------------------------------------------
    def torch_dtype(self) -> Any:
        import torch

        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.options["dtype"]]

    def load(self) -> Any:
        """Load the pipeline from the local folder (once), move it to the device and check its widths."""
        if self.pipe is not None:
            return self.pipe
        from brain_workbench.sdk.torch import resolve_device

        self.shapes()
        device = resolve_device(self.options["device"])
        if self.options["dtype"] == "fp16" and device.type == "cpu":
            raise WorkbenchError(f"{self.name}: dtype='fp16' needs a GPU; use 'bf16' or 'fp32' on the CPU")
        if self.options["cpu_offload"]:
            if importlib.util.find_spec("accelerate") is None:
                raise WorkbenchError(f"{self.name}: cpu_offload=True needs the accelerate package; "
                                     "pip install 'brain-workbench[offload]' or set cpu_offload=False")
            if device.type != "cuda":
                raise WorkbenchError(f"{self.name}: cpu_offload=True offloads to a CUDA GPU, but the device is "
                                     f"{device.type}; set cpu_offload=False")
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
        self.device = device
        try:
            pipe = self._load_pipeline(self.torch_dtype())
        except WorkbenchError:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            raise WorkbenchError(f"{self.name}: cannot load the pipeline from {self.root}: {exc}") from exc
        if self.options["cpu_offload"]:
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe
        self._check_loaded(pipe)
        return pipe

    def _load_pipeline(self, dtype: Any) -> Any:
        raise NotImplementedError

    def _check_loaded(self, pipe: Any) -> None:
        """Compare the loaded modules with the widths the configs declared (a backend refines this)."""

    def load_kwargs(self, dtype: Any) -> dict[str, Any]:
        """Keyword arguments of every ``from_pretrained`` call: local files only, dtype, variant."""
        kwargs: dict[str, Any] = {"local_files_only": True, **dtype_kwarg("diffusers", dtype)}
        if self.options["variant"]:
            kwargs["variant"] = self.options["variant"]
        return kwargs

    def native_size(self) -> int:
        """Output size when ``size`` is not given: the UNet's sample size times the VAE scale."""
        return 512

    @property
    def size(self) -> int:
        return int(self.options["size"] or self.native_size())

    # ---- fingerprint ----------------------------------------------------------------------------
    FINGERPRINT_EXCLUDES = ("path", "device", "batch_size", "seed", "cpu_offload", "digest")
    #: options naming files: their digests (``extra_digests``) enter the fingerprint, not their paths
    PATH_OPTIONS: tuple[str, ...] = ()

    def extra_digests(self) -> dict[str, str]:
        """Digests of files beyond the pipeline folder that change the images (adapter weights, negatives)."""
        return {}

    def fingerprint(self) -> str:
        """Folder digest (see ``digest``), other input files, options that change the images and code versions.

        The device, batch size and seed are left out: images are keyed by (decode cell, fingerprint, seed).
        """
        if self._fingerprint is None:
            import diffusers

            mode = self.options["digest"]
            skip = set(self.FINGERPRINT_EXCLUDES) | set(self.PATH_OPTIONS)
            if self.options["best_of"] == 1:
                skip |= {"rank_with", "rank_options", "rank_layer"}
            options = {k: v for k, v in self.options.items() if k not in skip}
            ranker = None
            if self.options["best_of"] > 1 and self.options["rank_with"] != "pipeline":
                ranker = self._rank_encoder().fingerprint()
            self._fingerprint = digest("diffusion-generator", CODE_VERSION, self.name, folder_digest(self.root, mode),
                                       self.extra_digests(), options, ranker, diffusers.__version__, length=32)
        return self._fingerprint

    # ---- inputs ------------------------------------------------------------------------------
    def _rows(self, what: str, x: Any, shape: tuple[int, ...], n: int | None) -> np.ndarray:
        """A float32 (n, *shape) array from (n, prod(shape)) or (n, *shape) input, refusing anything else."""
        arr = np.asarray(x)
        if arr.dtype.kind not in "fiu":
            raise WorkbenchError(f"{self.name}: {what} must be numeric, got dtype {arr.dtype}")
        width = int(math.prod(shape))
        if arr.ndim == 2 and arr.shape[1] == width:
            arr = arr.reshape((arr.shape[0], *shape))
        if arr.shape[1:] != tuple(shape) or arr.shape[0] == 0:
            raise WorkbenchError(f"{self.name}: {what} must have shape (n, {width}) or (n, {', '.join(map(str, shape))}) "
                                 f"for the pipeline in {self.root}, got {tuple(arr.shape)}; decode the embedding this "
                                 f"pipeline takes (embedding_space={self.embedding_space!r})")
        if n is not None and arr.shape[0] != n:
            raise WorkbenchError(f"{self.name}: {what} has {arr.shape[0]} rows but image_embeds has {n}")
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise WorkbenchError(f"{self.name}: {what} contains NaN or infinite values")
        return arr

    def _init_images(self, init_images: Any, n: int) -> list[Any] | None:
        """uint8 (n, H, W, 3) starting images as PIL images at the generation size (PIL bicubic resize)."""
        if init_images is None:
            return None
        if not self.supports_init:
            raise WorkbenchError(f"{self.name}: this pipeline conditions on the embedding alone and cannot start from "
                                 "an image; pass init_images=None or use an img2img backend (kandinsky-2.2, "
                                 "ip-adapter, versatile-diffusion)")
        arr = np.asarray(init_images)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
            raise WorkbenchError(f"{self.name}: init_images must be uint8 (n, H, W, 3), got {arr.dtype} {tuple(arr.shape)}")
        if arr.shape[0] != n:
            raise WorkbenchError(f"{self.name}: init_images has {arr.shape[0]} images but image_embeds has {n} rows")
        steps, strength = self.options["steps"], self.options.get("strength")
        if strength is not None and int(steps * strength) < 1:
            raise WorkbenchError(f"{self.name}: steps × strength = {steps} × {strength} leaves no denoising step "
                                 f"(int({steps * strength:g}) = 0) and the pipeline would crash; raise steps or strength "
                                 f"so that int(steps × strength) ≥ 1")
        from PIL import Image

        size = self.size
        return [Image.fromarray(a).resize((size, size), Image.Resampling.BICUBIC) for a in arr]

    # ---- generation --------------------------------------------------------------------------
    def generate(self, image_embeds: np.ndarray, init_images: np.ndarray | None = None,
                 text_embeds: np.ndarray | None = None, seed: int | None = None,
                 on_images: Callable[[int], None] | None = None, on_step: Callable[[int], None] | None = None
                 ) -> np.ndarray:
        """uint8 (n, size, size, 3) images for n decoded embeddings (optionally from init images and text).

        Row i, candidate k is drawn with its own generator seeded from (seed, i, k), so results do not
        depend on ``batch_size``. With ``best_of`` > 1 the candidate most similar to the embedding wins.
        ``on_images(k)`` is called as each batch of k candidate images is done, ``on_step(1)`` after every
        denoising step of a batch (progress for a run that takes minutes).
        """
        image_shape, text_shape = self.shapes()
        embeds = self._rows("image_embeds", image_embeds, image_shape, None)
        n = embeds.shape[0]
        texts = None
        if text_embeds is not None:
            if not self.supports_text or text_shape is None:
                raise WorkbenchError(f"{self.name}: this pipeline takes no text embeddings; pass text_embeds=None")
            texts = self._rows("text_embeds", text_embeds, text_shape, n)
        inits = self._init_images(init_images, n)
        seed = self.options["seed"] if seed is None else int(seed)
        best_of = self.options["best_of"]
        if best_of > 1:
            self._check_ranker()
        self.load()
        rows = [(i, k) for i in range(n) for k in range(best_of)]
        self._on_step = on_step
        out: list[np.ndarray] = []
        bs = self.options["batch_size"]
        for start in range(0, len(rows), bs):
            chunk = rows[start:start + bs]
            idx = [i for i, _ in chunk]
            images = self._generate_batch(
                embeds[idx], None if inits is None else [inits[i] for i in idx],
                None if texts is None else texts[idx], [row_seed(seed, i, k) for i, k in chunk])
            out.append(self._to_uint8(images))
            if on_images is not None:
                on_images(len(chunk))
        candidates = np.concatenate(out).reshape(n, best_of, *out[0].shape[1:])
        if best_of == 1:
            self.last_selection = None
            return np.ascontiguousarray(candidates[:, 0])
        flat = self._embed_for_ranking(candidates.reshape(-1, *candidates.shape[2:]))
        sims = cosine_rows(flat, np.repeat(embeds.reshape(n, -1), best_of, axis=0)).reshape(n, best_of)
        choice = sims.argmax(1)
        self.last_selection = {"candidate": choice, "similarity": sims[np.arange(n), choice], "similarities": sims}
        return np.ascontiguousarray(candidates[np.arange(n), choice])

    def _generate_batch(self, embeds: np.ndarray, inits: list[Any] | None, texts: np.ndarray | None,
                        seeds: Sequence[int]) -> Any:
        """Images (numpy float in [0, 1], (b, H, W, 3)) for one batch of rows."""
        raise NotImplementedError

    def denoising_steps(self, img2img: bool) -> int:
        """Denoising steps one batch runs: ``steps``, or ``int(steps × strength)`` when starting from an image."""
        steps = int(self.options["steps"])
        return min(int(steps * self.options["strength"]), steps) if img2img else steps

    def step_callback(self) -> dict[str, Any]:
        """Pipeline keyword arguments that report each denoising step to ``generate``'s ``on_step``."""
        report = self._on_step
        if report is None:
            return {}

        def on_step_end(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            report(1)
            return tensors

        return {"callback_on_step_end": on_step_end}

    def legacy_step_callback(self) -> dict[str, Any]:
        """As :meth:`step_callback`, for pipelines that take the older ``callback`` / ``callback_steps`` pair."""
        report = self._on_step
        if report is None:
            return {}
        return {"callback": lambda step, timestep, latents: report(1), "callback_steps": 1}

    def generators(self, seeds: Sequence[int]) -> list[Any]:
        """One CPU ``torch.Generator`` per row (CPU so that a seed gives the same noise on every device)."""
        import torch

        return [torch.Generator(device="cpu").manual_seed(s) for s in seeds]

    def tensor(self, x: np.ndarray) -> Any:
        import torch

        return torch.from_numpy(np.ascontiguousarray(x)).to(device=self.device, dtype=self.torch_dtype())

    @staticmethod
    def _to_uint8(images: Any) -> np.ndarray:
        arr = np.asarray(images, dtype=np.float32)
        return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)

    # ---- best-of-N ranking -------------------------------------------------------------------
    def _rank_encoder(self) -> Any:
        if self._ranker is None:
            self._ranker = build_encoder(self.options["rank_with"], **self.options["rank_options"])
            if getattr(self._ranker, "modality", "image") != "image":
                raise WorkbenchError(f"{self.name}: rank_with={self.options['rank_with']!r} is not an image encoder")
        return self._ranker

    def _check_ranker(self) -> None:
        """Before any generation: the ranking encoder exists and embeds into the decoded embedding's width."""
        probe = np.full((1, 32, 32, 3), 128, np.uint8)
        if self.options["rank_with"] == "pipeline":
            self.load()
            width = self._embed_images(probe).shape[1]
            source = "the pipeline's image encoder"
        else:
            width = self._encode_with_ranker(probe).shape[1]
            source = f"rank_with={self.options['rank_with']!r} layer {self.options['rank_layer']!r}"
        if width != self.embedding_dim:
            raise WorkbenchError(f"{self.name}: {source} gives embeddings of width {width}, but the decoded embeddings "
                                 f"have width {self.embedding_dim}; rank with the encoder whose embedding was decoded")

    def _encode_with_ranker(self, images: np.ndarray) -> np.ndarray:
        from PIL import Image

        layer = self.options["rank_layer"]
        feats = self._rank_encoder().encode([Image.fromarray(a) for a in images], [layer])[layer]
        return np.asarray(feats, dtype=np.float32).reshape(len(images), -1)

    def _embed_for_ranking(self, images: np.ndarray) -> np.ndarray:
        if self.options["rank_with"] == "pipeline":
            return self._embed_images(images)
        return self._encode_with_ranker(images)

    def _embed_images(self, images: np.ndarray) -> np.ndarray:
        """Embeddings (m, embedding_dim) of uint8 images by the pipeline's own CLIP image encoder."""
        raise WorkbenchError(f"{self.name}: this pipeline has no image encoder to rank candidates with; set rank_with "
                             f"to a registered image encoder (e.g. rank_with=clip, rank_options={{model: ..., "
                             f"pretrained: ...}} for {self.embedding_space})")
