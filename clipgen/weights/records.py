"""Verification records, file checks and progress events: what the cache and downloads share.

Next to every verified file sits ``<filename>.verified.json`` with the digest that was
checked (the registry's, or, where none is published, the one seen at download time) and
the size and mtime it had then, so later runs can trust an unchanged file without
re-hashing a gigabyte, and a changed one is re-hashed before it is used. An interrupted
download waits in ``<filename>.part``.

This module knows files and entries, never the cache folder (:mod:`.cache`) or the network
(:mod:`.fetch`); both build on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clipgen.atomic import write_text
from clipgen.errors import ModelError
from clipgen.weights.spec import FileSpec, WeightsEntry

#: Bytes read or written at a time while hashing and downloading.
CHUNK = 1 << 20


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


def emit(progress: ProgressCallback | None, phase: str, filename: str, **kw) -> None:
    """Report one :class:`ProgressEvent`, when anyone listens."""
    if progress is not None:
        progress(ProgressEvent(phase=phase, filename=filename, **kw))


# --------------------------------------------------------------------------- paths and records


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def read_record(path: Path) -> dict | None:
    """The verification record of ``path``; None when there is none or it is unreadable."""
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: Path, digest: str, source: str, published: bool) -> None:
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
    write_text(record_path(path), json.dumps(record, indent=1) + "\n")


def record_matches(path: Path, spec: FileSpec) -> bool:
    """A record exists for the file as it is now (size and mtime) and agrees with the registry."""
    record = read_record(path)
    if record is None:
        return False
    stat = path.stat()
    if record.get("size") != stat.st_size or record.get("mtime_ns") != stat.st_mtime_ns:
        return False
    return spec.sha256 is None or record.get("sha256") == spec.sha256


# --------------------------------------------------------------------------- checks


def download_hint(entry: WeightsEntry) -> str:
    """The command that fixes a missing or damaged file, for the end of error messages."""
    return f"clipgen models download {entry.name}"


def sha256_file(path: Path, progress: ProgressCallback | None = None, label: str = "") -> str:
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            emit(progress, "verify", label or path.name, done=done, total=total)
    return digest.hexdigest()


def check_file(entry: WeightsEntry, spec: FileSpec, path: Path,
               progress: ProgressCallback | None = None, trust_record: bool = True) -> None:
    """Raise unless ``path`` is the file the registry (or its record) says it is.

    An unchanged file with a matching record is trusted without hashing (unless
    ``trust_record`` is False); anything else is hashed, so a file modified after
    download is caught before it is used.
    """
    size = path.stat().st_size
    if spec.size is not None and size != spec.size:
        raise ModelError(
            f"{path} has {size} bytes, expected {spec.size}; fetch it again with: {download_hint(entry)}"
        )
    if trust_record and record_matches(path, spec):
        return
    digest = sha256_file(path, progress, spec.filename)
    record = read_record(path) or {}
    expected = spec.sha256 or record.get("sha256")
    if expected is not None and digest != expected:
        raise ModelError(
            f"{path} fails SHA-256 verification (got {digest[:12]}…, expected {expected[:12]}…); "
            f"fetch it again with: {download_hint(entry)}"
        )
    with contextlib.suppress(OSError):  # a read-only cache: verified now, re-hashed next time
        write_record(path, digest, source=record.get("source", "local"), published=spec.sha256 is not None)
