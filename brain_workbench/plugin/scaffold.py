"""``workbench plugin new``: an installable third-party plugin package that passes its conformance check.

The generated module follows the README's recipe: a class per plugin (``EncoderBase`` for encoders, a
scikit-learn estimator for heads), options as ``Annotated[..., Option(...)]`` keyword parameters of
``__init__``, and the plugin's name written once.
"""

from __future__ import annotations

import re
from pathlib import Path

from brain_workbench.plugin.hooks import KIND_HOOKS
from brain_workbench.types import WorkbenchError

SCAFFOLD_KINDS = ("dataset", "encoder", "head", "metric")
IMPORTS = {
    "encoder": ("from typing import Annotated, Any, Sequence\n\nimport numpy as np\n\n"
                "from brain_workbench.sdk import EncoderBase, LayerInfo, Option, digest, hookimpl"),
    "dataset": ("from pathlib import Path\nfrom typing import Annotated, Any, Sequence\n\nimport numpy as np\n\n"
                "from brain_workbench.sdk import Option, Recording, StimulusSet, Units, digest, hookimpl"),
    "head": ("from typing import Annotated\n\nimport numpy as np\nfrom sklearn.base import BaseEstimator\n\n"
             "from brain_workbench.sdk import Option, hookimpl"),
    "metric": "import numpy as np\n\nfrom brain_workbench.sdk import hookimpl",
}

IMPLEMENTATIONS = {
    "encoder": '''
class {cls}(EncoderBase):
    """Image encoder: colour histograms (layer ``histogram``) and a fixed random projection of them."""

    name = "{name}"
    modality = "image"

    def __init__(self, bins: Annotated[int, Option("histogram bins per colour channel")] = 8,
                 seed: Annotated[int, Option("seed of the random projection")] = 0) -> None:
        self.bins, self.seed = bins, seed

    def load_model(self) -> None:
        self.projection = np.random.default_rng(self.seed).standard_normal((3 * self.bins, 16)).astype(np.float32)

    def list_layers(self) -> list[LayerInfo]:
        return [LayerInfo("histogram", 0.0), LayerInfo("projection", 1.0)]

    def compute_fingerprint(self) -> str:
        return digest(self.name, "v1", self.bins, self.seed)

    def encode(self, batch: list[Any], layers: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = self.check_layers(layers)
        self.ensure_loaded()
        hist = np.stack([
            np.concatenate([np.histogram(np.asarray(im.convert("RGB"))[..., c], self.bins, (0, 255))[0]
                            for c in range(3)]) / (im.size[0] * im.size[1])
            for im in batch]).astype(np.float32)
        out = {{"histogram": hist, "projection": hist @ self.projection}}
        return {{layer: out[layer] for layer in wanted}}
''',
    "dataset": '''
class {cls}:
    """A tiny synthetic dataset: replace the generator with a reader of your files."""

    name = "{name}"
    modalities = ("image",)

    def __init__(self, local_path: Annotated[str | None, Option("folder with your files (unused by the example)")] = None,
                 n_stimuli: Annotated[int, Option("number of synthetic stimuli")] = 40) -> None:
        self.local_path, self.n = local_path, n_stimuli
        self.ids = tuple(f"{{self.name}}-{{i:04d}}" for i in range(n_stimuli))

    def subjects(self) -> list[str]:
        return ["1"]

    def _images(self, ids: Sequence[str]) -> list[Any]:
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

    def fetch(self, dest: str | Path, accept_terms: bool = False, **options: Any) -> Path:
        return Path(dest)

    def fingerprint(self) -> str:
        return digest(self.name, "v1", self.n)
''',
    "head": '''
class {cls}(BaseEstimator):
    """Ridge regression from features to units with a per-unit Pearson r score."""

    direction = "encode"

    def __init__(self, alpha: Annotated[float, Option("ridge penalty")] = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> {cls}:
        from sklearn.linear_model import Ridge

        self.model_ = Ridge(alpha=self.alpha).fit(np.asarray(X), np.asarray(y))
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.predict(np.asarray(X)))

    def score_per_unit(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        from brain_workbench.sdk.numerics import pearson_per_unit

        return pearson_per_unit(np.asarray(y), self.predict(X))

    def score(self, X: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.score_per_unit(X, y)))
''',
    "metric": '''
class {cls}:
    """Linear CKA (Kornblith et al. 2019) between two representations of the same stimuli."""

    kind = "similarity"
    invariances = ("permutation", "isotropic_scaling", "orthogonal", "translation")
    cross_validated = False

    def compare(self, X: np.ndarray, Y: np.ndarray) -> float:
        X = np.asarray(X, float) - np.mean(X, axis=0)
        Y = np.asarray(Y, float) - np.mean(Y, axis=0)
        cross = np.linalg.norm(Y.T @ X) ** 2
        return float(cross / (np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)))
''',
}
NAMED = {"dataset", "encoder"}
"""Kinds whose class declares ``name`` (their protocol has one); other classes get it from ``register()``."""

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
    register({registered}, {cls}, description="TODO: one line on what {name} is", citation="TODO")
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

[tool.setuptools.package-data]
{module} = ["py.typed"]

[[tool.mypy.overrides]]
module = ["sklearn.*"]
ignore_missing_imports = true
'''

TEST = '''import brain_workbench
from brain_workbench.plugin.testing import parametrize_with_checks


@parametrize_with_checks([brain_workbench.{kind}("{name}")])
def test_{module}_conformance(plugin, check):
    check(plugin)
'''


def class_name(name: str, kind: str) -> str:
    """``my-encoder`` → ``MyEncoder``, ``colour-hist`` → ``ColourHistEncoder``: the kind is appended once."""
    camel = "".join(part.capitalize() for part in name.split("-"))
    suffix = kind.capitalize()
    return camel if camel.endswith(suffix) else camel + suffix


def scaffold_plugin(name: str, kind: str, dest: Path) -> Path:
    """Write ``brain-workbench-<name>/`` with a pyproject entry point, a working module and its test."""
    if kind not in SCAFFOLD_KINDS:
        raise WorkbenchError(f"unknown kind {kind!r}; use one of {', '.join(SCAFFOLD_KINDS)}")
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise WorkbenchError(f"plugin name {name!r} must be lower-case letters, digits and '-', starting with a letter")
    module = "brain_workbench_" + name.replace("-", "_")
    cls = class_name(name, kind)
    root = Path(dest) / f"brain-workbench-{name}"
    if root.exists():
        raise WorkbenchError(f"{root} already exists; choose another name or --dest")
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT.format(name=name, kind=kind, module=module))
    registered = f"{cls}.name" if kind in NAMED else repr(name).replace("'", '"')
    (root / module / "__init__.py").write_text(
        MODULE.format(name=name, kind=kind, cls=cls, hook=KIND_HOOKS[kind], imports=IMPORTS[kind],
                      registered=registered, impl=IMPLEMENTATIONS[kind].format(cls=cls, name=name)))
    (root / module / "py.typed").write_text("")
    (root / "tests" / f"test_{module}.py").write_text(TEST.format(kind=kind, name=name, module=module))
    (root / "README.md").write_text(f"# brain-workbench-{name}\n\nA brain-workbench {kind} plugin. Install with "
                                    f"`pip install -e .`; it then appears in `workbench plugins list`.\n")
    return root
