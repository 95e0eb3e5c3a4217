"""Reading a world prompt's attributes back out of its text (for judging)."""

from __future__ import annotations

import re

from clipgen.toy import world

_COLOUR = "|".join(world.COLOURS)
_SHAPE_WORDS = {**{s: s for s in world.SHAPES}, **{p: s for s, p in world.PLURALS.items()}}
_POSITION = "|".join(sorted(world.POSITIONS, key=len, reverse=True))
_COUNT_WORDS = {word: n for n, word in world.COUNTS.items()} | {"a": 1, "an": 1}


def prompt_attributes(text: str) -> dict:
    """``"a red star on a blue background"`` -> ``{"colour": "red", "shape": "star", "background": "blue"}``.

    Only the attributes the text names are returned.
    """
    text = text.lower()
    found: dict = {}
    background = re.search(rf"\b({_COLOUR})\s+background\b", text)
    if background:
        found["background"] = background.group(1)
        text = text[: background.start()] + text[background.end():]
    shape = re.search(rf"\b({'|'.join(_SHAPE_WORDS)})\b", text)
    if shape:
        found["shape"] = _SHAPE_WORDS[shape.group(1)]
        colour = re.findall(rf"\b({_COLOUR})\b", text[: shape.start()])
        if colour:
            found["colour"] = colour[-1]
        count = re.search(rf"\b({'|'.join(_COUNT_WORDS)})\b", text[: shape.start()])
        if count:
            found["count"] = _COUNT_WORDS[count.group(1)]
    position = re.search(rf"\b(?:at the|in the)\s+({_POSITION})\b", text)
    if position:
        found["position"] = position.group(1)
    size = re.search(rf"\b({'|'.join(world.SIZES)})\b", text)
    if size:
        found["size"] = size.group(1)
    return found
