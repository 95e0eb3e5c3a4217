"""The local weights cache: where files live, and whether the ones there can be trusted.

Cache layout: ``$CLIPGEN_HOME/<entry name>/<filename>`` (default ``~/.cache/clipgen``),
each verified file with its record beside it (:mod:`.records`).

Nothing here touches the network: :func:`resolve` and :func:`verify` only read and hash;
downloading, and :func:`clipgen.weights.fetch.ensure` that may download, live in
:mod:`.fetch`, which builds on this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clipgen.errors import MissingWeightsError
from clipgen.weights.records import (
    ProgressCallback,
    check_file,
    download_hint,
    part_path,
    read_record,
    record_matches,
)
from clipgen.weights.registry import FileSpec, WeightsEntry, get_entry


def cache_dir() -> Path:
    """``$CLIPGEN_HOME``, else ``$XDG_CACHE_HOME/clipgen``, else ``~/.cache/clipgen``."""
    home = os.environ.get("CLIPGEN_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "clipgen"


def entry_dir(entry: str | WeightsEntry) -> Path:
    return cache_dir() / get_entry(entry).name


@dataclass(frozen=True)
class FileStatus:
    spec: FileSpec
    path: Path
    present: bool  # the final file exists (and has the published size, where known)
    partial_bytes: int  # bytes of an interrupted download waiting to be resumed
    recorded: bool  # a verification record matches the file as it is now


def file_status(entry: str | WeightsEntry) -> list[FileStatus]:
    """Cheap status (no hashing): for ``clipgen models list``."""
    entry = get_entry(entry)
    out = []
    for spec in entry.files:
        path = entry_dir(entry) / spec.filename
        present = path.is_file() and (spec.size is None or path.stat().st_size == spec.size)
        part = part_path(path)
        partial = part.stat().st_size if part.is_file() else 0
        out.append(FileStatus(spec, path, present, partial, present and record_matches(path, spec)))
    return out


def is_cached(entry: str | WeightsEntry) -> bool:
    return all(status.present for status in file_status(entry))


def resolve(entry: str | WeightsEntry, progress: ProgressCallback | None = None) -> dict[str, Path]:
    """Paths of the entry's cached, verified files by filename. Never touches the network."""
    return _checked_paths(get_entry(entry), progress, trust_record=True)


def verify(entry: str | WeightsEntry, progress: ProgressCallback | None = None) -> dict[str, str]:
    """Re-hash every file of a downloaded entry; returns ``{filename: sha256}``.

    Unlike :func:`resolve` this never trusts a record: it is the "check my disk" command.
    Files without a published digest are compared with the digest recorded at download.
    """
    paths = _checked_paths(get_entry(entry), progress, trust_record=False)
    return {filename: (read_record(path) or {}).get("sha256", "") for filename, path in paths.items()}


def _checked_paths(entry: WeightsEntry, progress: ProgressCallback | None, *,
                   trust_record: bool) -> dict[str, Path]:
    paths = {}
    for spec in entry.files:
        path = entry_dir(entry) / spec.filename
        if not path.is_file():
            # A run needs the whole entry; `models verify` was asked about files.
            what = (f"{entry.kind} weights {entry.name!r} are not downloaded ({path} is missing)" if trust_record
                    else f"{entry.name}: {spec.filename} is not downloaded")
            raise MissingWeightsError(f"{what}; run: {download_hint(entry)}")
        check_file(entry, spec, path, progress, trust_record=trust_record)
        paths[spec.filename] = path
    return paths
