"""The plugin manager: finds plugins through entry points and keeps the registries of each kind.

Every plugin, the built-ins included, arrives through the ``workbench`` entry-point group. Each is
loaded and asked to register in isolation, so a plugin that fails to import or register is listed
as broken with its error while the others keep working (pluggy itself would abort the whole hook
call on the first exception).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import re
import traceback
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy
from pydantic import BaseModel, ConfigDict, ValidationError

from brain_workbench.plugin import hooks, legacy
from brain_workbench.plugin.options import OptionInfo, option_schema, validate_options
from brain_workbench.types import Modality, WorkbenchError

KINDS = tuple(hooks.KIND_HOOKS)
_FACTORY_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
DISABLE_ENV = "WORKBENCH_DISABLE_PLUGINS"
BUILTIN_DIST = "brain-workbench"


class Card(BaseModel):
    """What ``register(name, factory, **card)`` may say about a plugin besides its options.

    Options are not part of the card: they come from the factory's signature (see
    :mod:`brain_workbench.plugin.options`), so they are declared exactly once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    citation: str = ""
    url: str = ""
    terms: str | None = None
    modalities: tuple[Modality, ...] | None = None


_KIND_FIELDS = {"modalities": {"encoder", "dataset"}, "terms": {"dataset"}}
"""Card fields that only some kinds may declare."""
INSTANCE_FIELDS = {"head": ("direction",), "metric": ("kind",), "image-metric": ("kind",)}
"""What a plugin's class itself declares (read from it for listings, never repeated on the card)."""


def old_group_entry_points() -> list[metadata.EntryPoint]:
    """Plugins declared in the previous release's entry-point group ``workbench``, loaded for one release with a
    DeprecationWarning each."""
    old = list(metadata.entry_points(group=legacy.OLD))
    for ep in old:
        warnings.warn(f"plugin {ep.name!r} ({_source_of(ep)}) declares its entry point in the previous release's "
                      f"group 'workbench'; declare it under [project.entry-points.{hooks.PROJECT}] (the old group "
                      f"is read until {legacy.REMOVED_IN})", DeprecationWarning, stacklevel=3)
    return old


def old_card_keys(kind: str, name: str, card: dict[str, Any]) -> dict[str, Any]:
    """The previous release's card keys, accepted for one release with a DeprecationWarning: ``options=`` (options
    now come from the factory's signature) is dropped, ``modality=`` becomes ``modalities=``."""
    card = dict(card)
    if "options" in card:
        card.pop("options")
        warnings.warn(f"{kind} {name!r}: register(options=...) is the previous release's card and is ignored (until "
                      f"{legacy.REMOVED_IN} it warns, then it is refused); declare each option once as a keyword "
                      "parameter of the factory (Annotated[type, Option('help')] for its help text)",
                      DeprecationWarning, stacklevel=4)
    if "modality" in card:
        modality = card.pop("modality")
        if kind in _KIND_FIELDS["modalities"] and "modalities" not in card:
            card["modalities"] = (modality,) if isinstance(modality, str) else tuple(modality)
        warnings.warn(f"{kind} {name!r}: card key 'modality' is the previous release's; write "
                      f"modalities=({modality!r},) (encoders and datasets only; accepted until {legacy.REMOVED_IN})",
                      DeprecationWarning, stacklevel=4)
    return card


def validate_card(kind: str, name: str, card: dict[str, Any]) -> Card:
    """The card as a :class:`Card`, or one sentence naming the key that is wrong."""
    card = old_card_keys(kind, name, card)
    known = set(Card.model_fields)
    for key in card:
        if key in INSTANCE_FIELDS.get(kind, ()):
            raise WorkbenchError(f"{kind} {name!r}: {key!r} is not a card key; declare it once as a class attribute "
                                 f"of the {kind} ({key} = ...)")
        if key not in known:
            raise WorkbenchError(f"{kind} {name!r}: unknown card key {key!r}; a card may hold "
                                 f"{', '.join(sorted(known))}")
        if key in _KIND_FIELDS and kind not in _KIND_FIELDS[key]:
            raise WorkbenchError(f"{kind} {name!r}: card key {key!r} is only for {', '.join(sorted(_KIND_FIELDS[key]))}s")
    try:
        return Card(**card)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise WorkbenchError(f"{kind} {name!r}: card field {where}: {first['msg']}") from None


Factory = Callable[..., Any] | str


def claim_name(kind: str, name: str, factory: Any) -> None:
    """A factory class carries its registered name as ``name``: set when the class declares none, refused when
    it declares another (the name lives once)."""
    if not isinstance(factory, type):
        return
    own = factory.__dict__.get("name")
    if own is None:
        try:
            factory.name = name  # type: ignore[attr-defined]
        except TypeError:  # built-in and extension types are immutable
            pass
    elif isinstance(own, str) and own != name:
        raise WorkbenchError(f"{kind} {name!r}: class {factory.__name__} declares name = {own!r}; register it as "
                             f"{own!r} or drop its name attribute, so the name lives in one place")


@dataclass
class Entry:
    """One registered plugin of a kind; ``factory(**options)`` builds it.

    ``factory`` may be a ``"module:attr"`` string, imported on first use, so registering a plugin
    never imports its heavy dependencies.
    """

    kind: str
    name: str
    factory: Factory
    plugin: str
    card: Card = field(default_factory=Card)

    @property
    def description(self) -> str:
        return self.card.description

    def load(self) -> Callable[..., Any]:
        """The factory itself (importing it when it was registered as ``"module:attr"``)."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            try:
                target: Any = importlib.import_module(module)
                for part in attr.split("."):
                    target = getattr(target, part)
            except Exception as exc:
                raise WorkbenchError(f"{self.kind} {self.name!r} (plugin {self.plugin}): cannot load its factory "
                                     f"{self.factory!r}: {type(exc).__name__}: {exc}") from None
            claim_name(self.kind, self.name, target)
            self.factory = factory = target
        return factory

    def options(self) -> dict[str, OptionInfo] | None:
        """The factory's options (type, default, help, choices); ``None`` if it takes ``**kwargs``."""
        return option_schema(self.load())

    def declared(self) -> dict[str, Any]:
        """What the plugin's class declares about itself (a head's direction, a metric's kind)."""
        factory = self.load()
        return {f: getattr(factory, f) for f in INSTANCE_FIELDS.get(self.kind, ()) if hasattr(factory, f)}

    def as_json(self, with_options: bool = True) -> dict[str, Any]:
        """The card, what the class declares and (by default) its options; a factory that cannot load says so."""
        out = {"name": self.name, "plugin": self.plugin, "plugin_kind": self.kind,
               **self.card.model_dump(exclude_none=True)}
        try:
            out.update(self.declared())
            if with_options:
                schema = self.options()
                out["options"] = None if schema is None else {k: v.as_json() for k, v in schema.items()}
        except WorkbenchError as exc:
            out["error"] = str(exc)
        return out


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


class Registry:
    """Registries of the four plugin kinds plus the plugins that filled them."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hooks.PROJECT)
        self.pm.add_hookspecs(hooks)
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self.conflicts: dict[tuple[str, str], list[str]] = {}
        self.plugins: dict[str, PluginInfo] = {}
        self._loaded = False
        self._command_apps: set[int] = set()

    # ---- discovery -------------------------------------------------------------------------
    def load_entry_points(self, entry_points: Iterable[metadata.EntryPoint] | None = None) -> None:
        """Load every plugin of the ``workbench`` entry-point group, each in isolation."""
        if entry_points is None:
            entry_points = [*metadata.entry_points(group=hooks.PROJECT), *old_group_entry_points()]
        disabled = disabled_plugins()
        for ep in sorted(entry_points, key=lambda e: (_source_of(e) != BUILTIN_DIST, e.name, _source_of(e))):
            source = _source_of(ep)
            info = PluginInfo(name=ep.name, module=ep.value, source=source, version=_version_of(ep))
            known = self.plugins.get(ep.name)
            if known is not None and (known.source, known.module) == (source, ep.value):
                continue
            if known is not None:
                info.name = f"{ep.name} ({source})"
            self.plugins[info.name] = info
            if _norm(ep.name) in disabled or _norm(source) in disabled:
                info.status = "disabled"
                continue
            if known is not None:
                self._mark_broken(info, f"plugin name {ep.name!r} is used by {known.source} and by {source}; "
                                        f"uninstall one or disable it with {DISABLE_ENV}={source}", with_traceback=False)
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
        name = name or str(getattr(plugin, "__name__", type(plugin).__name__))
        if name in self.plugins:
            raise WorkbenchError(f"a plugin named {name!r} is already loaded (from {self.plugins[name].source}); "
                                 "pass another name")
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

                def register(name: str, factory: Factory, _kind: str = kind, **card: Any) -> None:
                    added.append(self._add(_kind, name, factory, info.name, card))

                try:
                    impl.function(**({"register": register} if "register" in impl.argnames else {}))
                except Exception as exc:
                    for entry in added:
                        self._remove(entry)
                    self.pm.unregister(plugin)
                    self._mark_broken(info, f"{hook_name} failed: {type(exc).__name__}: {exc}")
                    return
        for entry in added:
            info.provides.setdefault(entry.kind, []).append(entry.name)

    def _mark_broken(self, info: PluginInfo, error: str, with_traceback: bool = True) -> None:
        info.status = "broken"
        info.error = error
        info.traceback = traceback.format_exc() if with_traceback else None

    def _add(self, kind: str, name: str, factory: Factory, plugin: str, card: dict[str, Any],
             record_conflict: bool = True) -> Entry:
        if kind not in KINDS:
            raise WorkbenchError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
            raise WorkbenchError(f"invalid {kind} name {name!r}: use letters, digits, '-', '_' or '.'")
        if isinstance(factory, str):
            if not _FACTORY_PATH.match(factory):
                raise WorkbenchError(f"{kind} {name!r}: a factory given as text must look like 'package.module:Class'")
        elif not callable(factory):
            raise WorkbenchError(f"{kind} {name!r}: factory must be callable or a 'module:Class' string")
        valid_card = validate_card(kind, name, card)
        existing = self.entries[kind].get(name)
        if existing is not None and existing.plugin != plugin and record_conflict and self._is_builtin(existing.plugin):
            raise WorkbenchError(
                f"{kind} {name!r} is a built-in name (plugin {existing.plugin!r}); plugin {plugin!r} cannot take it "
                f"over, so the built-in stays in use: rename it in {plugin!r}"
            )
        if existing is not None and existing.plugin != plugin:
            if not record_conflict:
                raise WorkbenchError(
                    f"duplicate {kind} name {name!r}: plugin {existing.plugin!r} already registers it; "
                    f"pick another name or pass replace=True to override it in this session"
                )
            owners = self.conflicts.setdefault((kind, name), [existing.plugin])
            if plugin not in owners:
                owners.append(plugin)
            raise WorkbenchError(
                f"duplicate {kind} name {name!r}: registered by plugin {existing.plugin!r} and by plugin "
                f"{plugin!r}; disable one with {DISABLE_ENV}={plugin}"
            )
        claim_name(kind, name, factory)
        entry = Entry(kind=kind, name=name, factory=factory, plugin=plugin, card=valid_card)
        self.entries[kind][name] = entry
        return entry

    def _is_builtin(self, plugin: str) -> bool:
        info = self.plugins.get(plugin)
        return info is not None and info.source == BUILTIN_DIST

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
            hints = []
            for status in ("broken", "disabled"):
                names = sorted(p.name for p in self.plugins.values() if p.status == status)
                if names:
                    hints.append(f"{status} plugins: {', '.join(names)}")
            hint = f" ({'; '.join(hints)}; see `workbench plugins list`)" if hints else ""
            raise WorkbenchError(f"unknown {kind} {name!r}; known {kind}s: {known}{hint}") from None

    def create(self, kind: str, name: str, **options: Any) -> Any:
        """Build a plugin instance, refusing unknown or ill-typed options with a clear message."""
        entry = self.get(kind, name)
        factory = entry.load()
        options = validate_options(f"{kind} {name!r}", factory, options)
        return factory(**options)

    def check_options(self, kind: str, name: str, options: dict[str, Any]) -> dict[str, Any]:
        """Validate options without building the plugin (sweep configs are checked before any work)."""
        entry = self.get(kind, name)
        return validate_options(f"{kind} {name!r}", entry.load(), options)

    def register(self, name: str, factory: Factory, kind: str, replace: bool = False, **card: Any) -> Entry:
        """Runtime registration (notebooks): the entry belongs to the ``runtime`` plugin."""
        self.ensure_loaded()
        kind = _check_kind(kind)
        if replace:
            self.entries[kind].pop(name, None)
            self.conflicts.pop((kind, name), None)
        info = self.plugins.setdefault("runtime", PluginInfo(name="runtime", module="__main__", source="runtime"))
        entry = self._add(kind, name, factory, "runtime", card, record_conflict=False)
        provided = info.provides.setdefault(kind, [])
        if name not in provided:
            provided.append(name)
        return entry

    def add_commands(self, app: Any) -> None:
        """Let each healthy plugin add CLI commands; a failing one is marked broken, not fatal."""
        self.ensure_loaded()
        if id(app) in self._command_apps:
            return
        self._command_apps.add(id(app))
        for impl in self.pm.hook.register_commands.get_hookimpls():
            info = self.plugins.get(impl.plugin_name)
            try:
                impl.function(**({"app": app} if "app" in impl.argnames else {}))
            except Exception as exc:
                if info is not None:
                    self._mark_broken(info, f"register_commands failed: {type(exc).__name__}: {exc}")


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise WorkbenchError(f"unknown plugin kind {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def disabled_plugins() -> set[str]:
    """Plugin or distribution names listed in ``$WORKBENCH_DISABLE_PLUGINS`` (normalised)."""
    return {_norm(s) for s in os.environ.get(DISABLE_ENV, "").split(",") if s.strip()}


def _source_of(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown"
    name = dist.metadata["Name"] if dist.metadata else None
    return str(name) if name else "unknown"


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
