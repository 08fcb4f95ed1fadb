"""Plugin options from one source of truth: the factory's signature.

A plugin declares each option once, as a keyword parameter with a default and, for its help text,
``Annotated[type, Option("help")]``; ``Literal`` types give the allowed choices. From that one
signature come ``workbench <kind>s info`` (type, default, help, choices), validation of unknown or
ill-typed options (CLI ``-o``, sweep YAML, Python) and the README's option tables, the way
scikit-learn reads an estimator's parameters from ``__init__``::

    class MyEncoder:
        def __init__(self, model: Annotated[str, Option("architecture name")] = "small",
                     pool: Annotated[Literal["mean", "cls"], Option("token pooling")] = "mean"): ...
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict, TypeAdapter, ValidationError

from brain_workbench.types import WorkbenchError

_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Option:
    """Help text (and optional explicit choices) attached to a factory parameter with ``Annotated``."""

    help: str
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class OptionInfo:
    """One option as users see it: name, type, default, help, choices."""

    name: str
    type: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    annotation: Any = None

    def as_json(self) -> dict[str, Any]:
        out = {"type": self.type, "default": _jsonable(self.default), "help": self.help}
        if self.choices:
            out["choices"] = [_jsonable(c) for c in self.choices]
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


def _target(factory: Callable[..., Any]) -> Callable[..., Any]:
    return factory.__init__ if inspect.isclass(factory) else factory


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(_target(factory), include_extras=True)
    except Exception:  # unresolvable annotations: fall back to the raw ones
        return dict(getattr(_target(factory), "__annotations__", {}))


def _strip(annotation: Any) -> tuple[Any, Option | None]:
    """The bare type of an ``Annotated`` hint and its :class:`Option`, if any."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((e for e in extras if isinstance(e, Option)), None)
    return annotation, None


def _choices(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _choices(arg)
            if found:
                return found
    return None


def type_name(annotation: Any) -> str:
    """A short, readable name for a type hint (``int``, ``str | None``, ``one of a, b``)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "any"
    if isinstance(annotation, str):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "str" if all(isinstance(a, str) for a in typing.get_args(annotation)) else "choice"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]" if args else getattr(origin, "__name__", str(origin))
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def option_schema(factory: Callable[..., Any]) -> dict[str, OptionInfo] | None:
    """Every keyword option of ``factory`` with its type, default, help and choices.

    ``None`` when the factory takes ``**kwargs`` (it accepts any option, so none can be checked).
    """
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    hints = _hints(factory)
    out: dict[str, OptionInfo] = {}
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL):
            continue
        if p.kind is p.VAR_KEYWORD:
            return None
        annotation, option = _strip(hints.get(p.name, p.annotation))
        choices = (option.choices if option and option.choices else None) or _choices(annotation)
        default = None if p.default is p.empty else p.default
        out[p.name] = OptionInfo(p.name, type_name(annotation), default, option.help if option else "",
                                 tuple(choices) if choices else None, annotation)
    return out


def _is_scalar_hint(annotation: Any) -> bool:
    if annotation in _SCALARS or typing.get_origin(annotation) is Literal:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(_is_scalar_hint(a) for a in typing.get_args(annotation))
    return False


def validate_options(owner: str, factory: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown or ill-typed options with one sentence; scalars come back coerced (``"5"`` → 5)."""
    schema = option_schema(factory)
    if schema is None:
        return dict(options)
    unknown = sorted(set(options) - set(schema))
    if unknown:
        close = [n for n in schema if n.startswith(unknown[0][:3])]
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise WorkbenchError(f"{owner} has no option {unknown[0]!r}{hint}; its options are: "
                             f"{', '.join(schema) or 'none'}")
    out = dict(options)
    for name, value in options.items():
        info = schema[name]
        if info.annotation in (None, inspect.Parameter.empty, Any) or isinstance(info.annotation, str):
            continue
        if info.choices and value not in info.choices:
            raise WorkbenchError(f"{owner}: option {name}={value!r} is not one of "
                                 f"{', '.join(map(repr, info.choices))}")
        try:
            adapter = TypeAdapter(info.annotation, config=ConfigDict(arbitrary_types_allowed=True))
            coerced = adapter.validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"]
            raise WorkbenchError(f"{owner}: option {name}={value!r} does not fit type {info.type} "
                                 f"({problem})") from None
        except Exception:  # a hint pydantic cannot build a validator for is checked by the plugin itself
            continue
        if _is_scalar_hint(info.annotation):
            out[name] = coerced
    return out
