"""The package's layers as a test: imports point downward only, never in a circle; plugins use only the SDK.

Every import counts, including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
PLUGINS = ROOT / "plugins"

# Higher numbers sit above lower ones; a module may import modules of its own rank or below.
RANKS: dict[str, int] = {
    "workbench.types": 0,
    "workbench.options": 1, "workbench.hooks": 1, "workbench.bases": 1,
    "workbench.store": 2, "workbench.fetch": 2, "workbench.http": 2, "workbench.nn": 2, "workbench.linalg": 2,
    "workbench.stats": 2, "workbench.scoring": 2, "workbench.registry": 2, "workbench.safe_pickle": 2,
    "workbench.decoding": 2, "workbench.ridge_predict": 2,
    "workbench.paths": 3, "workbench.features": 3, "workbench.images": 3, "workbench.testing": 3,
    "workbench": 3, "workbench.sdk": 3, "workbench.alignment": 3,
    "workbench.adaptation": 3,
    "workbench.sweep": 4,
    "workbench.figures": 5, "workbench.report": 5, "workbench.scaffold": 5,
    "workbench.cli": 6,
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def rank(module: str) -> int:
    best = max((name for name in RANKS if module == name or module.startswith(name + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"module {module} has no layer in tests/test_layers.py RANKS: add it")
    return RANKS[best]


def imports(path: Path) -> set[str]:
    """Every workbench module a file imports (``from workbench import x`` counts as ``workbench.x`` if a module)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = set()
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                base = ROOT / Path(*candidate.split("."))
                if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
                    submodules.add(candidate)
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(node.module)
    return {m for m in found if m == "workbench" or m.startswith("workbench.") or m.startswith("workbench_plugins")}


def core_modules() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_core_imports_point_downward() -> None:
    wrong = []
    for module, deps in core_modules().items():
        for dep in deps:
            if dep.startswith("workbench_plugins"):
                wrong.append(f"{module} imports the plugin {dep}: the core never names a plugin")
            elif rank(dep) > rank(module):
                wrong.append(f"{module} (layer {rank(module)}) imports {dep} (layer {rank(dep)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    graph = {m: {d for d in deps if d in core_modules()} for m, deps in core_modules().items()}
    # A package's __init__ importing its own submodules is how packages re-export; ignore parent→child edges.
    graph = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import circle: " + " → ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


@pytest.mark.parametrize("path", sorted(PLUGINS.rglob("*.py")), ids=lambda p: str(p.relative_to(PLUGINS)))
def test_plugins_import_only_the_sdk(path: Path) -> None:
    own = "workbench_plugins." + path.relative_to(PLUGINS).parts[0].removesuffix(".py")
    bad = [m for m in imports(path) if m != "workbench.sdk" and not (m == own or m.startswith(own + "."))
           and m != "workbench_plugins"]
    assert not bad, f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}; plugins import only workbench.sdk"
