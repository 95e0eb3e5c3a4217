"""The weights registry: which pretrained files exist, where they are hosted, what they weigh.

An entry is a name, a kind (``vqgan``, ``dalle-dvae``, ``biggan-deep``, ``prior``…), a description
and the files it consists of (:mod:`.spec`). Each family of models keeps its entries in
its own module (``entries/vqgan.py``…); adding a family is one module plus one line in
:data:`ENTRIES`. Nothing else in the package knows about particular models.

This module is pure data and lookups: no disk, no network (see :mod:`.cache` and
:mod:`.fetch`).
"""

from __future__ import annotations

from clipgen.errors import ModelError, did_you_mean
from clipgen.weights.entries.biggan import BIGGAN_ENTRIES
from clipgen.weights.entries.dalle import DALLE_ENTRIES
from clipgen.weights.entries.dvae import DVAE_ENTRIES
from clipgen.weights.entries.vqgan import VQGAN_CHECKPOINT, VQGAN_CONFIG, VQGAN_ENTRIES
from clipgen.weights.spec import FileSpec, WeightsEntry

__all__ = ["FileSpec", "WeightsEntry", "VQGAN_CONFIG", "VQGAN_CHECKPOINT", "ENTRIES", "REGISTRY",
           "entries", "names", "get_entry", "human_size"]

ENTRIES: tuple[WeightsEntry, ...] = (
    *VQGAN_ENTRIES,
    *DVAE_ENTRIES,
    *BIGGAN_ENTRIES,
    *DALLE_ENTRIES,
)
REGISTRY: dict[str, WeightsEntry] = {entry.name: entry for entry in ENTRIES}


def entries(kind: str | None = None) -> list[WeightsEntry]:
    return [e for e in REGISTRY.values() if kind is None or e.kind == kind]


def names(kind: str | None = None) -> tuple[str, ...]:
    return tuple(e.name for e in entries(kind))


def get_entry(name: str | WeightsEntry, kind: str | None = None) -> WeightsEntry:
    """The entry called ``name`` (an entry passes through, which is how tests add their own)."""
    if isinstance(name, WeightsEntry):
        return name
    entry = REGISTRY.get(name)
    if entry is None or (kind is not None and entry.kind != kind):
        valid = names(kind)
        raise ModelError(f"unknown {kind or 'model'} {name!r}; {did_you_mean(name, valid)}")
    return entry


def human_size(size: int | None, approx: bool = False) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            text = f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
            return ("~" if approx else "") + text
        value /= 1000
    return str(size)  # unreachable
