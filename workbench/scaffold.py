"""``workbench plugin new``: an installable third-party plugin package that passes its conformance check."""

from __future__ import annotations

import re
from pathlib import Path

from workbench.types import WorkbenchError

KIND_HOOK = {"dataset": "register_datasets", "encoder": "register_encoders", "head": "register_heads",
             "metric": "register_metrics"}

IMPLEMENTATIONS = {
    "encoder": '''
class {cls}:
    """Image encoder: colour histograms (layer ``histogram``) and a fixed random projection of them."""

    name = "{name}"
    modality = "image"

    def __init__(self, bins: int = 8, seed: int = 0) -> None:
        self.bins, self.seed = bins, seed
        self._projection = np.random.default_rng(seed).standard_normal((3 * bins, 16)).astype(np.float32)

    def layers(self) -> list[LayerInfo]:
        return [LayerInfo("histogram", 0.0), LayerInfo("projection", 1.0)]

    def encode(self, batch: list, layers: list[str]) -> dict[str, np.ndarray]:
        hist = np.stack([
            np.concatenate([np.histogram(np.asarray(im.convert("RGB"))[..., c], self.bins, (0, 255))[0]
                            for c in range(3)]) / (im.size[0] * im.size[1])
            for im in batch]).astype(np.float32)
        out = {{"histogram": hist, "projection": hist @ self._projection}}
        return {{layer: out[layer] for layer in layers}}

    def fingerprint(self) -> str:
        return digest("{name}", "v1", self.bins, self.seed)
''',
    "dataset": '''
class {cls}:
    """A tiny synthetic dataset: replace the generator with a reader of your files."""

    name = "{name}"
    modalities = ("image",)

    def __init__(self, local_path: str | None = None, n_stimuli: int = 40) -> None:
        self.local_path, self.n = local_path, n_stimuli
        self.ids = tuple(f"{name}-{{i:04d}}" for i in range(n_stimuli))

    def subjects(self) -> list[str]:
        return ["1"]

    def _images(self, ids):
        from PIL import Image

        return [Image.new("RGB", (32, 32), (int(s[-4:]) * 6 % 255, 80, 160)) for s in ids]

    def stimuli(self, modality: str | None = None) -> StimulusSet:
        return StimulusSet(self.ids, "image", self._images)

    def recording(self, subject: str) -> Recording:
        rng = np.random.default_rng(0)
        ids = np.repeat(np.asarray(self.ids), 2)
        responses = rng.standard_normal((len(ids), 5)).astype(np.float32)
        units = Units(space="custom", n=5, rois={{"all": np.ones(5, bool)}})
        return Recording(self.name, subject, responses, ids, units,
                         splits={{"train": np.asarray(self.ids[10:]), "test": np.asarray(self.ids[:10])}})

    def fetch(self, dest, accept_terms: bool = False, **options) -> Path:
        return Path(dest)

    def fingerprint(self) -> str:
        return digest("{name}", "v1", self.n)
''',
    "head": '''
class {cls}(BaseEstimator):
    """Ridge regression from features to units with a per-unit Pearson r score."""

    direction = "encode"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X, Y):
        from sklearn.linear_model import Ridge

        self.model_ = Ridge(alpha=self.alpha).fit(np.asarray(X), np.asarray(Y))
        return self

    def predict(self, X):
        return self.model_.predict(np.asarray(X))

    def score(self, X, Y):
        return pearson_per_unit(np.asarray(Y), self.predict(X))
''',
    "metric": '''
class {cls}:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same stimuli."""

    kind = "similarity"
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")
    cross_validated = False

    def compare(self, X, Y) -> float:
        X = np.asarray(X, float) - np.mean(X, axis=0)
        Y = np.asarray(Y, float) - np.mean(Y, axis=0)
        cross = np.linalg.norm(Y.T @ X) ** 2
        return float(cross / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))
''',
}

MODULE = '''"""{name}: a brain-workbench {kind} plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

import workbench
from workbench.scoring import pearson_per_unit
from workbench.types import LayerInfo, Recording, StimulusSet, Units, digest
{impl}

@workbench.hookimpl
def {hook}(register) -> None:
    register("{name}", {cls}, description="TODO: one line on what {name} is", citation="TODO")
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "workbench-{name}"
version = "0.1.0"
description = "A brain-workbench {kind} plugin"
requires-python = ">=3.10"
dependencies = ["brain-workbench"]

[project.entry-points.workbench]
{name} = "{module}"
'''

TEST = '''import workbench
from workbench.testing import check_{kind}


def test_{module}_passes_the_{kind}_conformance_check():
    check_{kind}(workbench.{kind}("{name}"))
'''


def scaffold_plugin(name: str, kind: str, dest: Path) -> Path:
    """Write ``workbench-<name>/`` with a pyproject entry point, a working module and its test."""
    if kind not in KIND_HOOK:
        raise WorkbenchError(f"unknown kind {kind!r}; use one of {', '.join(KIND_HOOK)}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise WorkbenchError(f"plugin name {name!r} must be lower-case letters, digits and '-', starting with a letter")
    module = "workbench_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-")) + kind.capitalize()
    root = Path(dest) / f"workbench-{name}"
    if root.exists():
        raise WorkbenchError(f"{root} already exists; choose another name or --dest")
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(name=name, kind=kind, module=module))
    (root / module / "__init__.py").write_text(
        MODULE.format(name=name, kind=kind, cls=cls, hook=KIND_HOOK[kind], impl=IMPLEMENTATIONS[kind].format(cls=cls, name=name)))
    (root / "tests" / f"test_{module}.py").write_text(TEST.format(kind=kind, name=name, module=module))
    (root / "README.md").write_text(f"# workbench-{name}\n\nA brain-workbench {kind} plugin. Install with "
                                    f"`pip install -e .`; it then appears in `workbench plugins list`.\n")
    return root
