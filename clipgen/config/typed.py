"""Build typed dataclasses from loosely typed layers (TOML values, CLI strings).

Each field may carry metadata: ``help``, ``min``, ``max``, ``choices``. Values arrive
either typed (TOML, Python API) or as strings (``--set key=value``); both go through
:func:`coerce`, which raises :class:`SettingsError` naming the key, the value, where it
came from and what would be valid.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Union

from clipgen.errors import SettingsError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def option(default=dataclasses.MISSING, *, help: str = "", min=None, max=None,
           choices=None, default_factory=dataclasses.MISSING):
    """A dataclass field with validation metadata."""
    metadata = {"help": help, "min": min, "max": max, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _describe(key: str, source: str) -> str:
    return f"{key} (from {source})" if source else key


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _scalar(value: Any, tp, where: str):
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected a whole number, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                pass
        raise SettingsError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{where}: expected text, got {value!r}")
    raise TypeError(f"unsupported field type {tp!r}")  # a programming error, not user input


def coerce(value: Any, tp, where: str):
    """Convert ``value`` to type ``tp`` (str, int, float, bool, Optional, tuple[...])."""
    inner, optional = _unwrap_optional(tp)
    if optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return coerce(value, inner, where)
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        variadic = len(args) == 2 and args[1] is Ellipsis
        original = value
        if isinstance(value, str):
            # "256x256" for sizes, "a,b,c" for lists
            separators = r"," if variadic else r"[x×,]"
            value = [v.strip() for v in re.split(separators, value)] if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"{where}: expected a list, got {value!r}")
        if variadic:
            return tuple(_scalar(v, args[0], where) for v in value)
        if len(value) != len(args) or any(v == "" for v in value):
            example = "x".join(["256"] * len(args))
            raise SettingsError(f"{where}: expected {len(args)} values like {example}, got {original!r}")
        return tuple(_scalar(v, a, where) for v, a in zip(value, args))
    return _scalar(value, tp, where)


def check_range(value: Any, field: dataclasses.Field, where: str) -> None:
    meta = field.metadata
    if value is None:
        return
    items = value if isinstance(value, tuple) else (value,)
    for item in items:
        if meta.get("choices") is not None and item not in meta["choices"]:
            raise SettingsError(
                f"{where}: {item!r} is not one of {', '.join(map(str, meta['choices']))}"
            )
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            lo, hi = meta.get("min"), meta.get("max")
            if lo is not None and item < lo:
                raise SettingsError(f"{where}: {item!r} is below the minimum {lo}")
            if hi is not None and item > hi:
                raise SettingsError(f"{where}: {item!r} is above the maximum {hi}")


def field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def build(cls, values: dict[str, Any], sources: dict[str, str], section: str = ""):
    """Instantiate dataclass ``cls`` from ``values``; unknown keys are errors listing valid ones."""
    from clipgen.errors import did_you_mean

    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = field_types(cls)
    kwargs = {}
    for key, raw in values.items():
        full = f"{section}.{key}" if section else key
        if key not in fields:
            where = f" (from {sources[full]})" if sources.get(full) else ""
            valid = did_you_mean(key, fields) if fields else "this section takes no keys"
            raise SettingsError(f"unknown setting {full!r}{where}; {valid}")
        where = _describe(full, sources.get(full, ""))
        value = coerce(raw, hints[key], where)
        check_range(value, fields[key], where)
        kwargs[key] = value
    return cls(**kwargs)


def to_plain(obj) -> dict[str, Any]:
    """A dataclass as a JSON/TOML-friendly dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            value = to_plain(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
