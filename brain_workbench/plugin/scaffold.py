"""``workbench plugin new``: an installable third-party plugin package that passes its conformance check."""

from __future__ import annotations

import re
from pathlib import Path

from brain_workbench.plugin.hooks import KIND_HOOKS
from brain_workbench.types import WorkbenchError

SCAFFOLD_KINDS = ("dataset", "encoder", "head", "metric")
IMPORTS = {
    "encoder": ("from typing import Annotated\n\nimport numpy as np\n\n"
                "from brain_workbench.sdk import LayerInfo, Option, digest, hookimpl"),
    "dataset": ("from pathlib import Path\nfrom typing import Annotated\n\nimport numpy as np\n\n"
                "from brain_workbench.sdk import Option, Recording, StimulusSet, Units, digest, hookimpl"),
    "head": ("from typing import Annotated\n\nimport numpy as np\nfrom sklearn.base import BaseEstimator\n\n"
             "from brain_workbench.sdk import Option, hookimpl, pearson_per_unit"),
    "metric": "import numpy as np\n\nfrom brain_workbench.sdk import hookimpl",
}

IMPLEMENTATIONS = {
    "encoder": '''
class {cls}:
    """Image encoder: colour histograms (layer ``histogram``) and a fixed random projection of them."""

    name = "{name}"
    modality = "image"

    def __init__(self, bins: Annotated[int, Option("histogram bins per colour channel")] = 8,
                 seed: Annotated[int, Option("seed of the random projection")] = 0) -> None:
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

    def __init__(self, local_path: Annotated[str | None, Option("folder with your files (unused by the example)")] = None,
                 n_stimuli: Annotated[int, Option("number of synthetic stimuli")] = 40) -> None:
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

    def __init__(self, alpha: Annotated[float, Option("ridge penalty")] = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X, y):
        from sklearn.linear_model import Ridge

        self.model_ = Ridge(alpha=self.alpha).fit(np.asarray(X), np.asarray(y))
        return self

    def predict(self, X):
        return self.model_.predict(np.asarray(X))

    def score(self, X, y):
        return pearson_per_unit(np.asarray(y), self.predict(X))
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

MODULE = '''"""{name}: a brain-workbench {kind} plugin.

Options are the keyword parameters of ``__init__``: give each a default and, for its help text,
``Annotated[type, Option("help")]`` (``Literal[...]`` types list their choices). That one signature
feeds ``workbench {kind}s info {name}``, option validation and sweep configs.
"""

from __future__ import annotations

{imports}

{impl}

@hookimpl
def {hook}(register) -> None:
    register("{name}", {cls}, description="TODO: one line on what {name} is", citation="TODO")
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "brain-workbench-{name}"
version = "0.1.0"
description = "A brain-workbench {kind} plugin"
requires-python = ">=3.10"
dependencies = ["brain-workbench"]

[project.entry-points.brain_workbench]
{name} = "{module}"
'''

TEST = '''import brain_workbench
from brain_workbench.plugin.testing import parametrize_with_checks


@parametrize_with_checks([brain_workbench.{kind}("{name}")])
def test_{module}_conformance(plugin, check):
    check(plugin)
'''


def scaffold_plugin(name: str, kind: str, dest: Path) -> Path:
    """Write ``brain-workbench-<name>/`` with a pyproject entry point, a working module and its test."""
    if kind not in SCAFFOLD_KINDS:
        raise WorkbenchError(f"unknown kind {kind!r}; use one of {', '.join(SCAFFOLD_KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise WorkbenchError(f"plugin name {name!r} must be lower-case letters, digits and '-', starting with a letter")
    module = "brain_workbench_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-")) + kind.capitalize()
    root = Path(dest) / f"brain-workbench-{name}"
    if root.exists():
        raise WorkbenchError(f"{root} already exists; choose another name or --dest")
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(name=name, kind=kind, module=module))
    (root / module / "__init__.py").write_text(
        MODULE.format(name=name, kind=kind, cls=cls, hook=KIND_HOOKS[kind], imports=IMPORTS[kind],
                      impl=IMPLEMENTATIONS[kind].format(cls=cls, name=name)))
    (root / "tests" / f"test_{module}.py").write_text(TEST.format(kind=kind, name=name, module=module))
    (root / "README.md").write_text(f"# brain-workbench-{name}\n\nA brain-workbench {kind} plugin. Install with "
                                    f"`pip install -e .`; it then appears in `workbench plugins list`.\n")
    return root
