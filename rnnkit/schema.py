"""Declared shapes of the JSON files rnnkit reads, checked before anything is built from them.

A schema is a dict of field -> kind; a kind is a Python type (``int``, ``float``, ``str``,
``bool``, ``dict``, ``list``), ``Int(lo, hi)`` / ``Number(lo, hi)`` with bounds, ``OneOf(...)``
kinds, ``ListOf(kind)``, ``Optional(kind)`` (may be missing) or a nested schema. Unknown
fields are refused, and so are missing ones, wrong types, booleans where numbers belong,
NaN and values out of bounds, each with one RnnkitError naming the file and the field path:

    check(meta, CHECKPOINT, "run/checkpoints/step-00000010.json")

``check_dataclass`` does the same for a dict meant for a dataclass of settings (the apps'
configs, TrainConfig), reading each field's annotation.
"""
from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields

from rnnkit.errors import RnnkitError


@dataclass(frozen=True)
class Int:
    lo: int | None = None
    hi: int | None = None


@dataclass(frozen=True)
class Number:
    lo: float | None = None
    hi: float | None = None
    finite: bool = True


@dataclass(frozen=True)
class ListOf:
    kind: object
    max_len: int | None = None


@dataclass(frozen=True)
class Optional:
    kind: object


class OneOf:
    def __init__(self, *kinds):
        self.kinds = kinds


ANY = object()          # a field whose value is checked by its reader


def _name(kind) -> str:
    if isinstance(kind, type):
        return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
                dict: "an object", list: "a list", type(None): "null"}.get(kind, kind.__name__)
    if isinstance(kind, Int):
        bounds = [f">= {kind.lo}" if kind.lo is not None else "",
                  f"<= {kind.hi}" if kind.hi is not None else ""]
        return "an integer " + " and ".join(b for b in bounds if b) if any(bounds) else \
            "an integer"
    if isinstance(kind, Number):
        bounds = [f">= {kind.lo}" if kind.lo is not None else "",
                  f"<= {kind.hi}" if kind.hi is not None else ""]
        return "a finite number " + " and ".join(b for b in bounds if b) if any(bounds) else \
            "a finite number"
    if isinstance(kind, ListOf):
        return f"a list of {_name(kind.kind)}"
    if isinstance(kind, OneOf):
        return " or ".join(_name(k) for k in kind.kinds)
    if isinstance(kind, dict):
        return "an object"
    return str(kind)


def _fits(value, kind) -> bool:
    if kind is ANY:
        return True
    if isinstance(kind, OneOf):
        return any(_fits(value, k) for k in kind.kinds)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int or isinstance(kind, Int):
        if not isinstance(value, int) or isinstance(value, bool):
            return False
        return not isinstance(kind, Int) or ((kind.lo is None or value >= kind.lo) and
                                             (kind.hi is None or value <= kind.hi))
    if kind is float or isinstance(kind, Number):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        if isinstance(kind, Number):
            if kind.finite and not math.isfinite(value):
                return False
            return (kind.lo is None or value >= kind.lo) and (kind.hi is None or value <= kind.hi)
        return True
    if isinstance(kind, ListOf):
        return isinstance(value, list) and (kind.max_len is None or len(value) <= kind.max_len)
    if isinstance(kind, dict):
        return isinstance(value, dict)
    return isinstance(value, kind)


def check(obj, schema, source: str, path: str = ""):
    """Check ``obj`` against ``schema`` (see the module docstring); returns ``obj``."""
    where = path or "the top level"
    if isinstance(schema, dict):
        if not isinstance(obj, dict):
            raise RnnkitError(f"{source}: expected an object at {where}, got "
                              f"{type(obj).__name__} {_short(obj)}")
        unknown = sorted(set(obj) - set(schema))
        if unknown:
            raise RnnkitError(f"{source}: expected only the fields {sorted(schema)} at {where}, "
                              f"got unknown field(s) {unknown[:5]}")
        for key, kind in schema.items():
            field = f"{path}.{key}" if path else key
            if key not in obj:
                if isinstance(kind, Optional):
                    continue
                raise RnnkitError(f"{source}: expected a field {field!r}, got none")
            check(obj[key], kind.kind if isinstance(kind, Optional) else kind, source, field)
        return obj
    if not _fits(obj, schema):
        raise RnnkitError(f"{source}: expected {_name(schema)} at {where}, got {_short(obj)}")
    if isinstance(schema, ListOf):
        for i, item in enumerate(obj):
            check(item, schema.kind, source, f"{path}[{i}]")
    return obj


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ANNOTATIONS = {"int": int, "float": float, "str": str, "bool": bool}


def check_dataclass(cls, values, source: str, path: str = ""):
    """``cls(**values)`` once ``values`` has exactly ``cls``'s fields, each of its annotated
    type (int, float, str, bool; an int where a float is declared), finite; RnnkitError
    naming the file and field otherwise (then the class's own checks run)."""
    hints = typing.get_type_hints(cls)
    schema = {}
    for f in fields(cls):
        kind = _ANNOTATIONS.get(getattr(hints[f.name], "__name__", ""), ANY)
        schema[f.name] = Optional(Number() if kind is float else kind)
    check(values, schema, source, path)
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        if isinstance(e, RnnkitError):
            raise RnnkitError(f"{source}: {e}") from None
        raise RnnkitError(f"{source}: expected the settings of {cls.__name__} at "
                          f"{path or 'the top level'}, got {e}") from None


__all__ = ["ANY", "Int", "ListOf", "Number", "OneOf", "Optional", "check", "check_dataclass"]
