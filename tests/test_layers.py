"""The package's layers as a test: imports point downward only, never in a circle; plugins use only the SDK;
no private name crosses a module boundary.

Every import counts, including those inside functions (a lazy import is still a dependency). Each
module is parsed once.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "brain_workbench"
PLUGINS = ROOT / "plugins"
CORE = "brain_workbench"
BUILTIN = "brain_workbench_plugins"

# The layers, by folder (or top-level module): higher numbers sit above lower ones, and a module may
# import modules of its own layer or below. Mirrors docs/architecture.md.
RANKS: dict[str, int] = {
    "brain_workbench.types": 0,
    "brain_workbench.numerics": 1, "brain_workbench.downloads": 1, "brain_workbench.store": 1,
    "brain_workbench.plugin": 1,
    "brain_workbench.analysis": 2,
    "brain_workbench": 3, "brain_workbench.sdk": 3,
    "brain_workbench.sweep": 4,
    "brain_workbench.figures": 5, "brain_workbench.report": 5,
    "brain_workbench.cli": 6,
}


@dataclass
class Module:
    name: str
    path: Path
    imports: set[str] = field(default_factory=set)
    private: list[str] = field(default_factory=list)  # "module.name" imported although private


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT if path.is_relative_to(PACKAGE) else PLUGINS.parent).with_suffix("").parts)
    if parts[0] == "plugins":
        parts[0] = BUILTIN
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    head, *rest = dotted.split(".")
    base = PACKAGE if head == CORE else PLUGINS if head == BUILTIN else None
    if base is None:
        return False
    target = base.joinpath(*rest)
    return target.with_suffix(".py").exists() or (target / "__init__.py").exists()


def parse(path: Path) -> Module:
    """The project modules a file imports and the private names it takes from other modules."""
    module = Module(module_name(path), path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            module.imports.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            whole = False
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                if _is_module(candidate):
                    module.imports.add(candidate)
                else:
                    whole = True
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        module.private.append(candidate)
            if whole:
                module.imports.add(node.module)
    module.imports = {m for m in module.imports if m.split(".")[0] in (CORE, BUILTIN)}
    return module


@functools.cache
def core() -> dict[str, Module]:
    return {m.name: m for m in map(parse, sorted(PACKAGE.rglob("*.py")))}


@functools.cache
def plugins() -> dict[str, Module]:
    return {m.name: m for m in map(parse, sorted(PLUGINS.rglob("*.py")))}


def rank(module: str) -> int:
    best = max((name for name in RANKS if module == name or module.startswith(name + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"module {module} has no layer in tests/test_layers.py RANKS: add its folder")
    return RANKS[best]


def test_core_imports_point_downward() -> None:
    wrong = []
    for module in core().values():
        for dep in module.imports:
            if dep.startswith(BUILTIN):
                wrong.append(f"{module.name} imports the plugin {dep}: the core never names a plugin")
            elif rank(dep) > rank(module.name):
                wrong.append(f"{module.name} (layer {rank(module.name)}) imports {dep} (layer {rank(dep)})")
    assert not wrong, "\n".join(wrong)


def test_no_import_circles() -> None:
    modules = core()
    # A package's __init__ importing its own submodules is how packages re-export; ignore parent→child edges.
    graph = {name: {d for d in m.imports if d in modules and not d.startswith(name + ".")} for name, m in modules.items()}
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


def test_no_private_name_crosses_a_module_boundary() -> None:
    crossing = [f"{m.name} imports {p}" for m in [*core().values(), *plugins().values()] for p in m.private]
    assert not crossing, "private names imported from another module:\n" + "\n".join(crossing)


@pytest.mark.parametrize("name", sorted(plugins()))
def test_plugins_import_only_the_sdk(name: str) -> None:
    module = plugins()[name]
    own = ".".join(name.split(".")[:2])
    bad = [m for m in module.imports
           if not (m == f"{CORE}.sdk" or m.startswith(f"{CORE}.sdk.")) and not (m == own or m.startswith(own + "."))
           and m != BUILTIN]
    assert not bad, f"{module.path.relative_to(ROOT)} imports {', '.join(sorted(bad))}; plugins import only {CORE}.sdk"
