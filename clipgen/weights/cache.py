"""The local weights cache: where files live, whether they can be trusted, progress events.

Cache layout: ``$CLIPGEN_HOME/<entry name>/<filename>`` (default ``~/.cache/clipgen``).
Next to every verified file sits ``<filename>.verified.json`` with the digest that was
checked (the registry's, or, where none is published, the one seen at download time) and
the size and mtime it had then, so later runs can trust an unchanged file without
re-hashing a gigabyte, and a changed one is re-hashed before it is used.

:func:`resolve` and :func:`verify` never touch the network; :func:`ensure` hands over to
:func:`clipgen.weights.fetch.download` when it is allowed to fetch missing files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clipgen.errors import MissingWeightsError, ModelError
from clipgen.atomic import write_text
from clipgen.weights.registry import FileSpec, WeightsEntry, get_entry

_CHUNK = 1 << 20
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- paths and records


def cache_dir() -> Path:
    """``$CLIPGEN_HOME``, else ``$XDG_CACHE_HOME/clipgen``, else ``~/.cache/clipgen``."""
    home = os.environ.get("CLIPGEN_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "clipgen"


def entry_dir(entry: str | WeightsEntry) -> Path:
    return cache_dir() / get_entry(entry).name


def is_offline(flag: bool = False) -> bool:
    """The run's own flag, or ``CLIPGEN_OFFLINE=1`` in the environment."""
    return flag or os.environ.get("CLIPGEN_OFFLINE", "").strip().lower() in _TRUE


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def _read_record(path: Path) -> dict | None:
    try:
        record = json.loads(_record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(path: Path, digest: str, source: str, published: bool) -> None:
    stat = path.stat()
    record = {
        "sha256": digest,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "source": source,
        # False: no digest is published for this file; this one was seen at download
        # time and later verifications compare against it.
        "published_digest": published,
    }
    write_text(_record_path(path), json.dumps(record, indent=1) + "\n")


def sha256_file(path: Path, progress: ProgressCallback | None = None, label: str = "") -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            _emit(progress, "verify", label or path.name, done=done, total=total)
    return digest.hexdigest()


# --------------------------------------------------------------------------- progress


@dataclass(frozen=True)
class ProgressEvent:
    """What a download or verification is doing.

    ``phase``: ``start`` (a file begins; ``total`` may be None), ``download`` and
    ``verify`` (``done`` of ``total`` bytes), ``mirror-failed`` (``message`` says why;
    the next mirror follows), ``done`` (the file is in place), ``skip`` (already cached).
    """

    phase: str
    filename: str
    done: int = 0
    total: int | None = None
    url: str = ""
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


def _emit(progress: ProgressCallback | None, phase: str, filename: str, **kw) -> None:
    if progress is not None:
        progress(ProgressEvent(phase=phase, filename=filename, **kw))


# --------------------------------------------------------------------------- status / resolve


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
        part = _part_path(path)
        partial = part.stat().st_size if part.is_file() else 0
        out.append(FileStatus(spec, path, present, partial, present and _record_matches(path, spec)))
    return out


def is_cached(entry: str | WeightsEntry) -> bool:
    return all(status.present for status in file_status(entry))


def _record_matches(path: Path, spec: FileSpec) -> bool:
    record = _read_record(path)
    if record is None:
        return False
    stat = path.stat()
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return False
    return spec.sha256 is None or record.get("sha256") == spec.sha256


def _download_hint(entry: WeightsEntry) -> str:
    return f"clipgen models download {entry.name}"


def _check_file(entry: WeightsEntry, spec: FileSpec, path: Path,
                progress: ProgressCallback | None = None, trust_record: bool = True) -> None:
    """Raise unless ``path`` is the file the registry (or its record) says it is.

    An unchanged file with a matching record is trusted without hashing (unless
    ``trust_record`` is False); anything else is hashed, so a file modified after
    download is caught before it is used.
    """
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ModelError(
            f"{path} has {size} bytes, expected {spec.size}; fetch it again with: {_download_hint(entry)}"
        )
    if trust_record and _record_matches(path, spec):
        return
    digest = sha256_file(path, progress, spec.filename)
    record = _read_record(path) or {}
    expected = spec.sha256 or record.get("sha256")
    if expected is not None and digest != expected:
        raise ModelError(
            f"{path} fails SHA-256 verification (got {digest[:12]}…, expected {expected[:12]}…); "
            f"fetch it again with: {_download_hint(entry)}"
        )
    with contextlib.suppress(OSError):  # a read-only cache: verified now, re-hashed next time
        _write_record(path, digest, source=record.get("source", "local"), published=spec.sha256 is not None)


def resolve(entry: str | WeightsEntry, progress: ProgressCallback | None = None) -> dict[str, Path]:
    """Paths of the entry's cached, verified files by filename. Never touches the network."""
    entry = get_entry(entry)
    paths = {}
    for spec in entry.files:
        path = entry_dir(entry) / spec.filename
        if not path.is_file():
            raise MissingWeightsError(
                f"{entry.kind} weights {entry.name!r} are not downloaded ({path} is missing); "
                f"run: {_download_hint(entry)}"
            )
        _check_file(entry, spec, path, progress)
        paths[spec.filename] = path
    return paths


def ensure(entry: str | WeightsEntry, *, offline: bool = False, download_missing: bool = False,
           progress: ProgressCallback | None = None) -> dict[str, Path]:
    """:func:`resolve`, downloading first when allowed (online and ``download_missing``)."""
    entry = get_entry(entry)
    if download_missing and not is_offline(offline) and not is_cached(entry):
        # Imported here: the download module builds on this one (records, checks, events).
        from clipgen.weights.fetch import download

        return download(entry, progress=progress)
    return resolve(entry, progress)


def verify(entry: str | WeightsEntry, progress: ProgressCallback | None = None) -> dict[str, str]:
    """Re-hash every file of a downloaded entry; returns ``{filename: sha256}``.

    Unlike :func:`resolve` this never trusts a record: it is the "check my disk" command.
    Files without a published digest are compared with the digest recorded at download.
    """
    entry = get_entry(entry)
    digests = {}
    for spec in entry.files:
        path = entry_dir(entry) / spec.filename
        if not path.is_file():
            raise MissingWeightsError(
                f"{entry.name}: {spec.filename} is not downloaded; run: {_download_hint(entry)}"
            )
        _check_file(entry, spec, path, progress, trust_record=False)
        digests[spec.filename] = (_read_record(path) or {}).get("sha256", "")
    return digests
