"""Configs that are their own command line: :class:`Config` and what reads its fields.

A config is a dataclass with a docstring under each field (as CleanRL's
``Args``). The field's annotation says what a value may be (``int``,
``float``, ``bool``, ``str``, ``Literal[...]`` choices, ``tuple[int, ...]``,
``X | None``, ``Literal[...] | int``) and, through ``Annotated``, its bounds::

    gamma: Annotated[float, Range(0, 1)] = 0.99
    batch_size: Annotated[int, Range(1, None)] = 128
    max_grad_norm: Annotated[float, Range(0, None, low_open=True)] | None = 10.0
    hidden_sizes: HiddenSizes = (64, 64)          # one or more integers >= 1

:meth:`Config.validate` checks every field against its annotation (bools are
not numbers, integers are whole and finite, floats are finite), then its
bounds, then the rules that tie fields together (:meth:`Config.check`), naming
the field. :func:`field_docs` reads the docstrings and :func:`field_bounds` the
bounds, so the CLI turns each field into a flag with that help.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import os
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from rltorch._checks import Range


@dataclass(frozen=True)
class Length:
    """A tuple field's bounds on its number of items (``Annotated[tuple[int, ...], Length(1)]``)."""

    minimum: int = 0

    def check(self, owner: str, name: str, value: tuple) -> None:
        if len(value) < self.minimum:
            raise ValueError(f"{owner}: `{name}` must hold at least {self.minimum} value(s), got {list(value)}")


#: Widths of an MLP's hidden layers: one or more integers >= 1 (every agent and classifier config).
HiddenSizes = Annotated[tuple[int, ...], Length(1), Range(1, None)]
#: A probability-like number in [0, 1].
Unit = Annotated[float, Range(0, 1)]
#: A number > 0 (epsilons, scales).
Positive = Annotated[float, Range(0, None, low_open=True)]
#: An optimizer's learning rate: in (0, 1].
LearningRate = Annotated[float, Range(0, 1, low_open=True)]
#: Integers >= 1 (counts, sizes, intervals) and >= 0.
PositiveInt = Annotated[int, Range(1, None)]
NonNegativeInt = Annotated[int, Range(0, None)]


@dataclass(kw_only=True)
class Config:
    """A dataclass whose fields are checked against their annotations (:meth:`validate`), read from
    dicts and files (:meth:`from_dict`) and turned into command-line flags. Subclasses add fields
    with a docstring under each, bounds in their annotations and cross-field rules in :meth:`check`."""

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Checks every field (type, then bounds, then :meth:`check`'s rules) and normalises it (tuples, ints);
        raises ValueError naming the field. Nothing is changed when a check fails. Returns ``self``."""
        values = {f.name: _coerce(type(self), f.name, hint, getattr(self, f.name))
                  for f, hint in _fields_and_hints(type(self))}
        self.check(values)
        for name, value in values.items():
            setattr(self, name, value)
        return self

    def check(self, values: dict[str, Any]) -> None:
        """Rules between fields (or beyond a type and bounds) on the checked ``values``; subclasses extend it
        (call ``super().check(values)``)."""

    def requirement(self, cond: bool, name: str, message: str) -> None:
        """Raises ``ValueError("<Config>: `name` message")`` unless ``cond``."""
        if not cond:
            raise ValueError(f"{type(self).__name__}: `{name}` {message}")

    @classmethod
    def from_dict(cls, values: dict):
        """A validated config from a dict of field values (unknown keys are an error)."""
        if not isinstance(values, dict):
            raise ValueError(f"{cls.__name__}: expected a dict of field values, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(str(k) for k in set(values) - known)
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict:
        """Plain JSON/TOML values (tuples become lists); ``from_dict(to_dict())`` gives an equal config."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in ((f.name, getattr(self, f.name)) for f in dataclasses.fields(self))}


@functools.cache
def _fields_and_hints(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """Each field with its annotation, ``Annotated`` bounds included."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f, hints[f.name]) for f in dataclasses.fields(cls))


def field_hints(cls: type) -> dict[str, Any]:
    """Each field's resolved annotation without its bounds (``Annotated[float, Range(0, 1)]`` is ``float``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def field_bounds(cls: type) -> dict[str, str]:
    """The fields that have bounds, with them in words ("must lie in [0, 1]", "values must be >= 1")."""
    return {f.name: text for f, hint in _fields_and_hints(cls) if (text := _bounds_text(hint))}


def _bounds_text(hint) -> str:
    inner, _ = optional_inner(hint)
    either = literal_or(inner)
    if either is not None:
        return _bounds_text(either[1])
    if typing.get_origin(inner) is not Annotated:
        return ""
    base, *metadata = typing.get_args(inner)
    items = typing.get_origin(base) is tuple
    parts = [("values must " if items else "must ") + m.describe() for m in metadata if isinstance(m, Range)]
    parts += [f"at least {m.minimum} value(s)" for m in metadata if isinstance(m, Length) and m.minimum]
    return "; ".join(parts)


def _constrain(cls: type, name: str, metadata, value):
    """Checks ``value`` against the ``Annotated`` bounds of its field (a tuple's Range bounds each item)."""
    owner = cls.__name__
    for bound in metadata:
        if isinstance(bound, Range):
            if isinstance(value, tuple):
                if not all(bound.contains(v) for v in value):
                    raise ValueError(f"{owner}: `{name}` values must {bound.describe()}, got {list(value)}")
            else:
                bound.check(owner, name, value)
        elif isinstance(bound, Length):
            bound.check(owner, name, value)
    return value


def literal_or(hint) -> tuple[tuple, Any] | None:
    """(the choices, the other type) for a ``Literal[...] | T`` annotation such as ``int | Literal["auto"]``."""
    hint = _strip(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        literals = [a for a in args if typing.get_origin(a) is Literal]
        others = [a for a in args if typing.get_origin(a) is not Literal and a is not type(None)]
        if len(literals) == 1 and len(others) == 1 and len(args) == 2:
            return typing.get_args(literals[0]), others[0]
    return None


def optional_inner(hint) -> tuple[Any, bool]:
    """(the hint without ``None``, whether ``None`` is allowed)."""
    hint = _strip(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _strip(hint):
    """``hint`` without a bound-less ``Annotated`` wrapper around a union (``Annotated[int | None, ...]``)."""
    if typing.get_origin(hint) is Annotated:
        base, *metadata = typing.get_args(hint)
        if typing.get_origin(base) in (typing.Union, types.UnionType) and not any(
                isinstance(m, (Range, Length)) for m in metadata):
            return base
    return hint


def _coerce(cls: type, name: str, hint, value):
    def fail(expected: str):
        raise ValueError(f"{cls.__name__}: `{name}` must be {expected}, got {value!r}")

    inner, nullable = optional_inner(hint)
    if value is None:
        return None if nullable else fail(describe(hint))
    if typing.get_origin(inner) is Annotated:
        base, *metadata = typing.get_args(inner)
        return _constrain(cls, name, metadata, _coerce(cls, name, base, value))
    either = literal_or(inner)
    if either is not None:
        choices, other = either
        if not isinstance(value, bool) and isinstance(value, str) and value in choices:
            return value
        try:
            return _coerce(cls, name, other, value)
        except ValueError:
            fail(describe(hint))
    origin = typing.get_origin(inner)
    if origin is Literal:
        choices = typing.get_args(inner)
        if isinstance(value, bool) or value not in choices:
            fail(f"one of {', '.join(repr(c) for c in choices)}")
        return value
    if inner is bool:
        return value if isinstance(value, bool) else fail("true or false")
    if inner is int:
        return _as_int(value) if _as_int(value) is not None else fail("an integer")
    if inner is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            fail("a finite number")
        return float(value)
    if inner is str:
        return value if isinstance(value, str) else fail("a string")
    if origin is tuple:
        item_hint = typing.get_args(inner)[0]
        if not isinstance(value, (list, tuple)):
            fail(f"a list of {describe(item_hint)}s")
        items = tuple(_coerce(cls, f"{name}[{i}]", item_hint, v) for i, v in enumerate(value))
        return items
    raise TypeError(f"{cls.__name__}: field `{name}` has an annotation rltorch configs do not support: {hint!r}")


def _as_int(value) -> int | None:
    """``value`` as an int when it is one (whole finite floats like 1e5 count; bools do not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def describe(hint) -> str:
    """A short human name for an annotation (for help texts and errors)."""
    inner, nullable = optional_inner(hint)
    if typing.get_origin(inner) is Annotated:
        bounds = _bounds_text(inner)
        text = describe(typing.get_args(inner)[0]) + (f" ({bounds})" if bounds else "")
        return f"{text} or none" if nullable else text
    origin = typing.get_origin(inner)
    either = literal_or(inner)
    if either is not None:
        text = f"{describe(either[1])} or {'|'.join(str(c) for c in either[0])}"
    elif origin is Literal:
        text = "|".join(str(c) for c in typing.get_args(inner))
    elif origin is tuple:
        text = f"comma-separated {describe(typing.get_args(inner)[0])}s"
    else:
        text = {bool: "bool", int: "integer", float: "number", str: "string"}.get(inner, str(inner))
    return f"{text} or none" if nullable else text


def parse_field(cls: type, name: str, text: str):
    """The value a command-line string means for field ``name`` (validated later by ``validate``)."""
    hints = field_hints(cls)
    if name not in hints:
        raise ValueError(f"{cls.__name__}: unknown field {name}; known: {', '.join(sorted(hints))}")
    inner, nullable = optional_inner(hints[name])
    text = text.strip()
    if nullable and text.lower() in ("none", "null"):
        return None

    def fail(expected: str):
        raise ValueError(f"{cls.__name__}: `{name}` must be {expected}, got {text!r}")

    either = literal_or(inner)
    if either is not None:
        if text in either[0]:
            return text
        inner = either[1]
    if inner is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        fail("true or false")
    if inner is int:
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)  # 1e5 is accepted as 100000; 1.5 and inf are rejected by validate
            except ValueError:
                fail("an integer")
    if inner is float:
        try:
            return float(text)
        except ValueError:
            fail("a number")
    if typing.get_origin(inner) is tuple:
        item_hint = typing.get_args(inner)[0]
        parts = [p for p in text.strip("[]()").replace(" ", "").split(",") if p]
        items = []
        for i, part in enumerate(parts):
            items.append(parse_field_item(cls, f"{name}[{i}]", item_hint, part))
        return tuple(items)
    return text


def parse_field_item(cls: type, name: str, hint, text: str):
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{cls.__name__}: `{name}` must be an integer, got {text!r}") from None
    if hint is float:
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{cls.__name__}: `{name}` must be a number, got {text!r}") from None
    return text


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field, read from the source of ``cls`` and its bases (a subclass's wins)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):  # no source (frozen app, interactive session): generated help instead
            continue
        body = ast.parse(source).body[0].body
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


# ------------------------------------------------------------------ configs as command-line flags


def flag_name(field_name: str) -> str:
    """``--learning-rate`` for ``learning_rate``."""
    return "--" + field_name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser, config_class: type) -> None:
    """One flag per config field, help from the field's docstring and bounds; absent flags leave the field alone."""
    docs, hints, bounds = field_docs(config_class), field_hints(config_class), field_bounds(config_class)
    defaults = config_class()
    group = parser.add_argument_group(f"{config_class.__name__} fields (also --config FILE, --set KEY=VALUE)")
    for f in dataclasses.fields(config_class):
        hint, default = hints[f.name], getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else ("none" if default is None else default)
        text = docs.get(f.name) or f"{f.name.replace('_', ' ')} ({describe(hint)})"
        limits = f"{bounds[f.name]}; " if f.name in bounds else ""
        text = f"{text} ({limits}default: {shown})".replace("%", "%%")
        flags = [flag_name(f.name)] + (["--env"] if f.name == "env_id" else []) + list(f.metadata.get("aliases", ()))
        if f.metadata.get("repeat"):  # one value per use of the flag (values may hold commas themselves)
            group.add_argument(*flags, dest=f.name, action="append", default=argparse.SUPPRESS,
                               metavar=f.metadata.get("metavar", "VALUE"),
                               help=f"{text} (repeatable)".replace("%", "%%"))
        elif hint is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=text)
        elif typing.get_origin(hint) is Literal:
            group.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, choices=typing.get_args(hint), help=text)
        else:
            group.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar=flag_metavar(hint), help=text)


def flag_metavar(hint) -> str:
    inner, nullable = optional_inner(hint)
    either = literal_or(inner)
    if either is not None:
        text = "|".join([{int: "N", float: "X"}.get(either[1], "VALUE"), *map(str, either[0])])
    elif typing.get_origin(inner) is tuple:
        text = "N,N,..."
    else:
        text = {int: "N", float: "X", str: "TEXT"}.get(inner, "VALUE")
    return f"{text}|none" if nullable else text


def config_from_flags(args: argparse.Namespace, config_class: type, algorithm: str):
    """The validated config that parsed flags (:func:`add_config_flags`, plus ``--config FILE`` and
    ``--set KEY=VALUE`` when the parser has them) describe; ValueError naming the field otherwise."""
    values: dict = {}
    if getattr(args, "config", None):
        values.update(load_config_file(args.config, algorithm))
    for f in dataclasses.fields(config_class):
        if hasattr(args, f.name):
            value = getattr(args, f.name)
            values[f.name] = parse_field(config_class, f.name, value) if isinstance(value, str) else value
    for item in getattr(args, "set", None) or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        values[key] = parse_field(config_class, key, text)
    return config_class.from_dict(values)


def load_config_file(path: str, algorithm: str) -> dict:
    """Config fields for ``algorithm`` from a .toml or .json file: the whole file, or its ``[algorithm]``
    table. An ``algorithm`` key (as in a run's config.json) must name the same algorithm. ValueError (or
    FileNotFoundError) with a one-line message otherwise."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"config file {path!r} is a directory")
    kind = "TOML" if path.endswith(".toml") else "JSON"
    try:
        if kind == "TOML":
            try:
                import tomllib
            except ImportError:  # Python < 3.11
                import tomli as tomllib

            with open(path, "rb") as f:
                data = tomllib.load(f)
        else:
            with open(path) as f:
                data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ValueError(
            f"config file {path!r} is not valid {kind}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a table/object of config fields, got {type(data).__name__}")
    if isinstance(data.get(algorithm), dict):
        data = data[algorithm]
    data = dict(data)
    recorded = data.pop("algorithm", algorithm)
    if recorded != algorithm:
        raise ValueError(f"config file {path!r} is for {recorded!r}, not {algorithm!r}")
    return data
