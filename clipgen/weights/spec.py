"""What a registry entry is: a named model made of files, each with mirrors, size and digest.

:func:`build_entry` makes one from data laid out the way sources publish it (what is known
about each file, then the mirrors, each hosting the whole set), so an entry module is a
table rather than nested constructors (compare open_clip's ``_pcfg``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence


@dataclass(frozen=True)
class FileSpec:
    """One file of an entry, stored under ``filename`` whatever the mirrors call it."""

    filename: str
    urls: tuple[str, ...]
    size: int | None = None  # exact bytes, where published; checked before and after download
    sha256: str | None = None  # where published; otherwise the digest seen is recorded
    approx_size: int | None = None  # for display only, when the exact size is unknown
    # Hosts known to be gone, kept for provenance; never tried.
    retired_urls: tuple[str, ...] = ()

    @property
    def display_size(self) -> int | None:
        return self.size if self.size is not None else self.approx_size


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    kind: str
    description: str
    files: tuple[FileSpec, ...] = field(default_factory=tuple)

    def file(self, filename: str) -> FileSpec:
        for spec in self.files:
            if spec.filename == filename:
                return spec
        raise KeyError(filename)  # a programming error: callers name files they declared

    @property
    def size(self) -> int | None:
        """Total bytes, approximate unless :attr:`exact_size` (small unknown files count 0)."""
        sizes = [spec.display_size for spec in self.files if spec.display_size is not None]
        return sum(sizes) if sizes else None

    @property
    def exact_size(self) -> bool:
        return all(spec.size is not None for spec in self.files)


@dataclass(frozen=True)
class FileFacts:
    """What is known about one file apart from where it is hosted (see :class:`FileSpec`)."""

    size: int | None = None
    sha256: str | None = None
    approx_size: int | None = None
    retired_urls: tuple[str, ...] = ()


#: One mirror: a URL per file of the entry, in the entry's file order; None where that
#: mirror lacks the file.
Mirror = Sequence[str | None]


def build_entry(name: str, kind: str, description: str, files: Mapping[str, FileFacts],
                mirrors: Iterable[Mirror]) -> WeightsEntry:
    """An entry from its files (filename -> facts) and its mirrors, in the order they are tried."""
    mirrors = list(mirrors)
    for mirror in mirrors:
        if len(mirror) != len(files):  # a typo in the registry data, caught at import
            raise ValueError(f"{name}: a mirror lists {len(mirror)} URLs for {len(files)} files: {mirror}")
    specs = tuple(
        FileSpec(filename, tuple(m[column] for m in mirrors if m[column] is not None),
                 facts.size, facts.sha256, facts.approx_size, facts.retired_urls)
        for column, (filename, facts) in enumerate(files.items())
    )
    return WeightsEntry(name, kind, description, specs)
