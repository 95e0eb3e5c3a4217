"""Prompt syntax: ``"a red apple:1.5|blurry:-0.5"``. Pure functions.

Each ``|``-separated part is ``TEXT[:WEIGHT[:STOP]]``. Numbers are taken from the
right only where they are numbers, so text with colons works ("ratio 16:9 poster").
A bare integer directly after a digit (``16:9``, ``10:30``) is read as text; write
``2.0`` to weight such a prompt (``"ratio 16:9:2.0"``). ``\\:`` and ``\\|`` are a
literal colon and bar. A negative weight repels; STOP ends a prompt's pull once its
(signed) distance falls below it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from clipgen.errors import PromptError

_SEPARATOR = re.compile(r"(?<!\\)\|")
_COLON = re.compile(r"(?<!\\):")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_BARE_INTEGER = re.compile(r"^\d+$")


@dataclass(frozen=True)
class Prompt:
    text: str
    weight: float = 1.0
    stop: float = -math.inf


def _unescape(text: str) -> str:
    return text.replace("\\:", ":").replace("\\|", "|")


def _is_number_segment(segment: str, left: str) -> bool:
    """Whether ``segment`` (right of a colon) is a weight/stop rather than part of the text."""
    if not _NUMBER.match(segment):
        return False
    # "16:9", "10:30": a ratio or a time, not a weight.
    return not (_BARE_INTEGER.match(segment) and left[-1:].isdigit())


def parse_prompt(part: str) -> Prompt:
    """``"TEXT[:WEIGHT[:STOP]]"`` -> Prompt."""
    pieces = _COLON.split(part)
    numbers: list[float] = []
    while len(pieces) > 1 and len(numbers) < 2 and _is_number_segment(pieces[-1], pieces[-2]):
        numbers.insert(0, float(pieces.pop()))
    text = _unescape(":".join(pieces)).strip()
    if not text:
        raise PromptError(f"prompt part {part.strip()!r} has no text; write it as 'text:weight'")
    weight = numbers[0] if numbers else 1.0
    stop = numbers[1] if len(numbers) > 1 else -math.inf
    if weight == 0:
        raise PromptError(f"prompt {text!r} has weight 0, which does nothing; use a non-zero weight")
    return Prompt(text=text, weight=weight, stop=stop)


def parse_prompts(spec: str) -> list[Prompt]:
    """``"a:1.5|b:-0.5"`` -> [Prompt('a', 1.5), Prompt('b', -0.5)]. Empty specs give []."""
    if not spec.strip():
        return []
    parts = _SEPARATOR.split(spec)
    if any(not p.strip() for p in parts):
        raise PromptError(f"prompt {spec!r} has an empty part between '|' separators; remove the extra '|'")
    prompts = [parse_prompt(p) for p in parts]
    if all(p.weight < 0 for p in prompts):
        raise PromptError(
            f"prompt {spec!r} has only negative weights, so nothing to aim for; add a positive prompt"
        )
    return prompts


@dataclass(frozen=True)
class ImagePrompt:
    path: str
    weight: float = 1.0


def parse_image_prompt(spec: str) -> ImagePrompt:
    """``"PATH[:weight]"`` -> ImagePrompt. A path may itself contain colons."""
    path, sep, tail = spec.rpartition(":")
    if sep and path and _NUMBER.match(tail):
        weight = float(tail)
        if weight == 0 or not math.isfinite(weight):
            raise PromptError(f"image prompt {spec!r}: weight must be a non-zero number")
        return ImagePrompt(path=path, weight=weight)
    if not spec.strip():
        raise PromptError("empty image prompt; give PATH or PATH:weight")
    return ImagePrompt(path=spec, weight=1.0)
