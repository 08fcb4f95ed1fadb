"""The plugin manager: finds plugins through entry points and keeps the registries of each kind.

Every plugin, the built-ins included, arrives through the ``workbench`` entry-point group. Each is
loaded and asked to register in isolation, so a plugin that fails to import or register is listed
as broken with its error while the others keep working (pluggy itself would abort the whole hook
call on the first exception).
"""

from __future__ import annotations

import importlib.metadata as metadata
import inspect
import os
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Iterable

import pluggy

from workbench import hooks
from workbench.types import WorkbenchError

KINDS = tuple(hooks.KIND_HOOKS)
DISABLE_ENV = "WORKBENCH_DISABLE_PLUGINS"
BUILTIN_DIST = "brain-workbench"


@dataclass
class Entry:
    """One registered dataset, encoder, head or metric; ``factory(**options)`` builds it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def description(self) -> str:
        return str(self.card.get("description", ""))

    def as_json(self) -> dict[str, Any]:
        card = {k: v for k, v in self.card.items() if _is_jsonable(v)}
        return {"kind": self.kind, "name": self.name, "plugin": self.plugin, **card}


@dataclass
class PluginInfo:
    """What ``workbench plugins list`` shows about one plugin."""

    name: str
    module: str
    source: str
    version: str = ""
    status: str = "ok"  # ok | broken | disabled
    error: str | None = None
    traceback: str | None = None
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "module": self.module, "source": self.source,
                "version": self.version, "status": self.status,
                "error": self.error, "provides": self.provides}


def _is_jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, list, tuple, dict, type(None)))


class Registry:
    """Registries of the four plugin kinds plus the plugins that filled them."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hooks.PROJECT)
        self.pm.add_hookspecs(hooks)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.conflicts: dict[tuple[str, str], list[str]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._loaded = False

    # ---- discovery -------------------------------------------------------------------------
    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Load every plugin of the ``workbench`` entry-point group, each in isolation."""
        if entry_points is None:
            entry_points = metadata.entry_points(group=hooks.PROJECT)
        disabled = {s.strip() for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}
        for ep in sorted(entry_points, key=lambda e: (_source_of(e) != BUILTIN_DIST, e.name)):
            source = _source_of(ep)
            if ep.name in self.plugins:
                continue
            info = PluginInfo(name=ep.name, module=ep.value, source=source, version=_version_of(ep))
            self.plugins[ep.name] = info
            if ep.name in disabled or source in disabled:
                info.status = "disabled"
                continue
            try:
                module = ep.load()
            except BaseException as exc:  # a broken import must never take the CLI down
                if isinstance(exc, KeyboardInterrupt):
                    raise
                self._mark_broken(info, f"could not import {ep.value}: {type(exc).__name__}: {exc}")
                continue
            self._register_plugin(module, info)
        self._loaded = True

    def add_plugin(self, plugin: ModuleType | object, name: str | None = None, source: str = "runtime") -> PluginInfo:
        """Register a plugin object (module or instance with hookimpls) directly, e.g. from a notebook."""
        name = name or getattr(plugin, "__name__", type(plugin).__name__)
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", repr(plugin)), source=source)
        self.plugins[name] = info
        self._register_plugin(plugin, info)
        return info

    def _register_plugin(self, plugin: Any, info: PluginInfo) -> None:
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except Exception as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._mark_broken(info, f"invalid plugin: {exc}")
            return
        added: list[Entry] = []
        for kind, hook_name in hooks.KIND_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue

                def register(name: str, factory: Callable[..., Any], _kind: str = kind, **card: Any) -> None:
                    added.append(self._add(_kind, name, factory, info.name, card))

                try:
                    impl.function(register=register)
                except Exception as exc:
                    for entry in added:
                        self._remove(entry)
                    self.pm.unregister(plugin)
                    self._mark_broken(info, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                    return
        for entry in added:
            info.provides.setdefault(entry.kind, []).append(entry.name)

    def _mark_broken(self, info: PluginInfo, error: str) -> None:
        info.status = "broken"
        info.error = error
        info.traceback = traceback.format_exc()

    def _add(self, kind: str, name: str, factory: Callable[..., Any], plugin: str, card: dict[str, Any]) -> Entry:
        if kind not in KINDS:
            raise WorkbenchError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise WorkbenchError(f"invalid {kind} name {name!r}: use letters, digits, '-', '_' or '.'")
        if not callable(factory):
            raise WorkbenchError(f"{kind} {name!r}: factory must be callable")
        existing = self.entries[kind].get(name)
        if existing is not None and existing.plugin != plugin:
            owners = self.conflicts.setdefault((kind, name), [existing.plugin])
            owners.append(plugin)
            raise WorkbenchError(
                f"duplicate {kind} name {name!r}: registered by plugin {existing.plugin!r} and by plugin "
                f"{plugin!r}; disable one with {DISABLE_ENV}={plugin}"
            )
        entry = Entry(kind=kind, name=name, factory=factory, plugin=plugin, card=dict(card))
        self.entries[kind][name] = entry
        return entry

    def _remove(self, entry: Entry) -> None:
        if self.entries[entry.kind].get(entry.name) is entry:
            del self.entries[entry.kind][entry.name]

    # ---- lookup ----------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        if not self._loaded:
            self.load_entry_points()

    def names(self, kind: str) -> list[str]:
        self.ensure_loaded()
        return sorted(self.entries[_check_kind(kind)])

    def get(self, kind: str, name: str) -> Entry:
        self.ensure_loaded()
        kind = _check_kind(kind)
        if (kind, name) in self.conflicts:
            owners = self.conflicts[(kind, name)]
            raise WorkbenchError(
                f"{kind} {name!r} is registered by more than one plugin ({', '.join(owners)}); "
                f"disable all but one with {DISABLE_ENV}"
            )
        try:
            return self.entries[kind][name]
        except KeyError:
            known = ", ".join(sorted(self.entries[kind])) or "none"
            broken = [p.name for p in self.plugins.values() if p.status == "broken"]
            hint = f" (broken plugins: {', '.join(broken)}; see `workbench plugins list`)" if broken else ""
            raise WorkbenchError(f"unknown {kind} {name!r}; known {kind}s: {known}{hint}") from None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Build a plugin instance, refusing options it does not take with a clear message."""
        entry = self.get(kind, name)
        _check_options(entry, options)
        return entry.factory(**options)

    def register(self, name: str, factory: Callable[..., Any], kind: str, replace: bool = False, **card: Any) -> Entry:
        """Runtime registration (notebooks): the entry belongs to the ``runtime`` plugin."""
        self.ensure_loaded()
        kind = _check_kind(kind)
        if replace:
            self.entries[kind].pop(name, None)
            self.conflicts.pop((kind, name), None)
        info = self.plugins.setdefault("runtime", PluginInfo(name="runtime", module="__main__", source="runtime"))
        entry = self._add(kind, name, factory, "runtime", card)
        info.provides.setdefault(kind, []).append(name)
        return entry

    def add_commands(self, app: Any) -> None:
        """Let each healthy plugin add CLI commands; a failing one is marked broken, not fatal."""
        self.ensure_loaded()
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            try:
                impl.function(app=app)
            except Exception as exc:
                if info is not None:
                    self._mark_broken(info, f"register_commands failed: {type(exc).__name__}: {exc}")


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise WorkbenchError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def _check_options(entry: Entry, options: dict[str, Any]) -> None:
    schema = entry.card.get("options")
    if isinstance(schema, dict) and schema and not any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in _parameters(entry.factory)
    ):
        unknown = sorted(set(options) - set(schema))
        if unknown:
            raise WorkbenchError(
                f"{entry.kind} {entry.name!r} has no option {unknown[0]!r}; its options are: "
                f"{', '.join(sorted(schema)) or 'none'}"
            )
        return
    params = _parameters(entry.factory)
    if params and not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        accepted = {p.name for p in params}
        unknown = sorted(set(options) - accepted)
        if unknown:
            raise WorkbenchError(
                f"{entry.kind} {entry.name!r} has no option {unknown[0]!r}; its options are: "
                f"{', '.join(sorted(accepted)) or 'none'}"
            )


def _parameters(factory: Callable[..., Any]) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return []


def _source_of(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown"
    name = dist.metadata["Name"] if dist.metadata else "unknown"
    return name


def _version_of(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.version if dist is not None else ""


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = Registry()
        _REGISTRY.load_entry_points()
    return _REGISTRY


def reset_registry() -> None:
    """Forget loaded plugins (tests, or after installing a plugin in a running notebook)."""
    global _REGISTRY
    _REGISTRY = None
