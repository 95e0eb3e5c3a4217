"""What a registry entry is: a named model made of files, each with mirrors, size and digest."""

from __future__ import annotations

from dataclasses import dataclass, field


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
