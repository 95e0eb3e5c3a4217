"""Build typed dataclasses from loosely typed layers (TOML values, CLI strings).

Each field may carry metadata: ``help``, ``min``, ``max``, ``choices``. Values arrive
either typed (TOML, Python API) or as strings (``--set key=value``); both go through
:func:`coerce`, which raises :class:`SettingsError` naming the key, the value, where it
came from and what would be valid. The same metadata is the help text users read
(:func:`describe`): the command line and ``clipgen generators`` show it, never a copy.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Union

from clipgen.errors import SettingsError, did_you_mean

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}

#: Number types: the parser for strings, the Python values taken as they are, and what to ask
#: for. A float field takes whole numbers too; a whole-number field takes no 1.5.
_NUMBERS = {int: (int, (int,), "a whole number"), float: (float, (int, float), "a number")}

#: A range end past this only guards the type (a seed's 2**63 - 1); listing it tells a reader nothing.
_SHOWN_LIMIT = 2**31


def option(default=dataclasses.MISSING, *, help: str = "", min=None, max=None,
           choices=None, default_factory=dataclasses.MISSING):
    """A dataclass field with validation metadata."""
    metadata = {"help": help, "min": min, "max": max, "choices": choices}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _describe(key: str, source: str) -> str:
    return f"{key} (from {source})" if source else key


def unwrap_optional(tp) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(tp, False)``."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _number(value: Any, tp, where: str, example: float):
    parse, accepted, wanted = _NUMBERS[tp]
    number = None
    if isinstance(value, str):
        try:
            number = parse(value.strip())
        except ValueError:
            pass
    elif isinstance(value, accepted) and not isinstance(value, bool):
        number = parse(value)
    if number is None:
        raise SettingsError(f"{where}: expected {wanted}, got {value!r}")
    # NaN passes every range check (all comparisons are false) and inf poisons the loss.
    if not math.isfinite(number):
        shown = value.strip() if isinstance(value, str) else repr(value)
        raise SettingsError(f"{where}: {shown} is not a finite number; give a number such as {example}")
    return number


def _scalar(value: Any, tp, where: str, example: float):
    if tp in _NUMBERS:
        return _number(value, tp, where, example)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise SettingsError(f"{where}: expected true or false, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise SettingsError(f"{where}: expected text, got {value!r}")
    raise TypeError(f"unsupported field type {tp!r}")  # a programming error, not user input


def coerce(value: Any, tp, where: str, example: float = 0.1):
    """Convert ``value`` to type ``tp`` (str, int, float, bool, Optional, tuple[...]).

    ``example`` is the number an error suggests in place of NaN or infinity."""
    inner, optional = unwrap_optional(tp)
    if optional:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
            return None
        return coerce(value, inner, where, example)
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
            return tuple(_scalar(v, args[0], where, example) for v in value)
        if len(value) != len(args) or any(v == "" for v in value):
            example_size = "x".join(["256"] * len(args))
            raise SettingsError(f"{where}: expected {len(args)} values like {example_size}, got {original!r}")
        return tuple(_scalar(v, a, where, example) for v, a in zip(value, args))
    return _scalar(value, tp, where, example)


def _example(field: dataclasses.Field) -> float:
    """A valid number to suggest for ``field``: its default where that is one, else 0.1 kept in range."""
    default = field.default
    if isinstance(default, (int, float)) and not isinstance(default, bool) and math.isfinite(default):
        return default
    example, lo, hi = 0.1, field.metadata.get("min"), field.metadata.get("max")
    if lo is not None:
        example = max(example, lo)
    if hi is not None:
        example = min(example, hi)
    return example


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
        value = coerce(raw, hints[key], where, _example(fields[key]))
        check_range(value, fields[key], where)
        kwargs[key] = value
    return cls(**kwargs)


def _shown(number) -> str:
    return f"{number:,}" if isinstance(number, int) else f"{number:g}"


def describe(field: dataclasses.Field, choices=None, notes: tuple[str, ...] = ()) -> str:
    """``field``'s help as one sentence, with ``notes``, its choices and its range:
    ``"Cutouts per step (1 to 4,096)."``. ``choices`` replaces the field's own (for lists
    known only at run time, like the registered generators)."""
    meta = field.metadata
    choices = meta.get("choices") if choices is None else choices
    parts = list(notes)
    if choices:
        parts.append("one of " + ", ".join(map(str, choices)))
    lo, hi = meta.get("min"), meta.get("max")
    if hi is not None and abs(hi) >= _SHOWN_LIMIT:
        hi = None
    if lo is not None and hi is not None:
        parts.append(f"{_shown(lo)} to {_shown(hi)}")
    elif lo is not None:
        parts.append(f"at least {_shown(lo)}")
    elif hi is not None:
        parts.append(f"at most {_shown(hi)}")
    text = (meta.get("help") or field.name.replace("_", " ")).rstrip(".")
    if not parts:
        return f"{text}."
    if text.endswith(")"):  # "Seed (default: drawn; at least 0)", not "Seed (default: drawn) (at least 0)"
        return f"{text[:-1]}; {'; '.join(parts)})."
    return f"{text} ({'; '.join(parts)})."


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


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a generator that has none of its own."""
