"""Downloads into the weights cache: mirrors in turn, HTTP Range resume, per-entry locking.

A file is fetched to ``<filename>.part`` (with ``<filename>.part.url`` naming the mirror
that started it), checked against the published size and SHA-256, and only then moved into
place and recorded (see :mod:`.records`). Network trouble with one mirror moves on to the
next; disk trouble is raised at once, since no other mirror would help.

:func:`ensure` is the way runs ask for weights: cached and verified, downloaded first
only when the caller allows it and is not offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from clipgen import __version__
from clipgen.atomic import write_text
from clipgen.errors import MissingWeightsError, ModelError, OutputError, one_line
from clipgen.weights.cache import entry_dir, is_cached, resolve
from clipgen.weights.records import (
    CHUNK,
    ProgressCallback,
    check_file,
    download_hint,
    emit,
    part_path,
    write_record,
)
from clipgen.weights.registry import FileSpec, WeightsEntry, get_entry

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent downloads are the user's call
    fcntl = None

_TIMEOUT_S = 30
# Some hosts refuse urllib's default "Python-urllib/x.y".
_USER_AGENT = f"clipgen/{__version__} (+https://github.com/; urllib)"


class _MirrorFailed(Exception):
    """One mirror did not deliver the right bytes; the next one is tried."""

    def __init__(self, reason: str, bad_bytes: bool = False):
        super().__init__(reason)
        self.bad_bytes = bad_bytes


def ensure(entry: str | WeightsEntry, *, offline: bool, download_missing: bool = False,
           progress: ProgressCallback | None = None) -> dict[str, Path]:
    """:func:`~clipgen.weights.cache.resolve`, downloading first when allowed
    (``download_missing`` and not ``offline``)."""
    entry = get_entry(entry)
    if download_missing and not offline and not is_cached(entry):
        return download(entry, offline=offline, progress=progress)
    return resolve(entry, progress)


def download(entry: str | WeightsEntry, *, offline: bool, progress: ProgressCallback | None = None,
             force: bool = False) -> dict[str, Path]:
    """Fetch every missing or unverifiable file of an entry; returns their paths.

    ``offline`` is the caller's decision (the CLI reads the environment for it): when
    True nothing is fetched and the error names the command to run once online.
    Each file goes to ``<filename>.part`` in the cache folder (resumed with an HTTP
    Range request when a previous attempt was interrupted), is checked against the
    published size and SHA-256, and only then moved into place with ``os.replace``, so
    a reader never sees a half-written or unverified file.
    """
    entry = get_entry(entry)
    if offline:
        raise MissingWeightsError(
            f"cannot download {entry.name!r} while offline (CLIPGEN_OFFLINE=1, HF_HUB_OFFLINE=1 or --offline); "
            f"go online and run: {download_hint(entry)}"
        )
    folder = entry_dir(entry)
    paths = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _folder_lock(folder):
            for spec in entry.files:
                path = folder / spec.filename
                paths[spec.filename] = path
                if path.is_file() and not force:
                    try:
                        check_file(entry, spec, path, progress)
                        emit(progress, "skip", spec.filename, total=path.stat().st_size)
                        continue
                    except ModelError:
                        pass  # wrong bytes on disk: fetch a fresh copy below
                _download_file(entry, spec, path, progress)
    except OSError as exc:
        # Network errors never get here (_fetch turns them into _MirrorFailed): this is the disk.
        raise OutputError(
            f"cannot write to the weights cache {folder} ({exc.strerror or exc}); "
            f"free some space or set CLIPGEN_HOME to a writable folder"
        ) from None
    return paths


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """Serialise downloads of one entry across processes (a second waits, then finds it cached)."""
    if fcntl is None:
        yield
        return
    with open(folder / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _download_file(entry: WeightsEntry, spec: FileSpec, path: Path,
                   progress: ProgressCallback | None) -> None:
    part = part_path(path)
    failures: list[str] = []
    saw_bad_bytes = False
    for url in spec.urls:
        # A resumed download that fails verification may have mixed two mirrors'
        # bytes; retry that mirror once from scratch before moving on.
        for attempt in range(2):
            resumed = part.is_file() and part.stat().st_size > 0
            try:
                digest = _fetch(url, spec, part, progress)
            except _MirrorFailed as exc:
                if exc.bad_bytes:
                    saw_bad_bytes = True
                    _discard_part(part)
                    if resumed and attempt == 0:
                        continue
                failures.append(f"{urllib.parse.urlsplit(url).netloc}: {exc}")
                emit(progress, "mirror-failed", spec.filename, url=url, message=str(exc))
                break
            os.replace(part, path)
            _origin_path(part).unlink(missing_ok=True)
            write_record(path, digest, source=url, published=spec.sha256 is not None)
            emit(progress, "done", spec.filename, done=path.stat().st_size, total=path.stat().st_size, url=url)
            return
    summary = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    if saw_bad_bytes:
        raise ModelError(
            f"no mirror of {entry.name}/{spec.filename} delivered the published file ({summary}); "
            f"nothing was kept; try again later"
        )
    raise MissingWeightsError(
        f"could not download {entry.name}/{spec.filename} ({summary or 'no mirrors'}); "
        f"check the connection and run: {download_hint(entry)}"
    )


def _fetch(url: str, spec: FileSpec, part: Path, progress: ProgressCallback | None) -> str:
    """Download ``url`` into ``part`` (resuming), verify, return the SHA-256 hex digest."""
    have = part.stat().st_size if part.is_file() else 0
    origin = _part_origin(part)
    if have and ((spec.size is not None and have > spec.size) or (spec.sha256 is None and origin != url)):
        # Without a published digest nothing would catch two mirrors' bytes spliced
        # together, so only the mirror that started a part may finish it.
        _discard_part(part)
        have = 0
    digest = hashlib.sha256()
    headers = {"User-Agent": _USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have and (spec.size is None or have == spec.size):
            # The server says there is nothing past what we hold: the part is complete.
            return _finish(spec, part, _hash_existing(part, digest))
        if exc.code == 416:
            _discard_part(part)
        raise _MirrorFailed(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise _MirrorFailed(_reason(exc)) from None
    with response:
        status = response.status
        content_type = response.headers.get("Content-Type", "")
        if content_type.startswith("text/html") and not spec.filename.endswith(".html"):
            # Login pages and "file not found" pages arrive as 200 OK.
            raise _MirrorFailed("served a web page, not the file")
        if status == 206 and have:
            start, total = _content_range(response.headers.get("Content-Range", ""))
            if start != have:
                _discard_part(part)
                raise _MirrorFailed("resumed at the wrong offset")
            _hash_existing(part, digest)
            mode = "ab"
        else:
            # 200: the server ignored the Range header (or there was none); start over.
            have = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
            write_text(_origin_path(part), url)
        if spec.size is not None and total is not None and total != spec.size:
            raise _MirrorFailed(f"offers {total} bytes, expected {spec.size}")
        total = total if total is not None else spec.size
        emit(progress, "start", spec.filename, done=have, total=total, url=url)
        done = have
        with open(part, mode) as fh:  # disk errors propagate: no other mirror would help
            while True:
                try:
                    chunk = response.read(CHUNK)
                except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                    # The part stays for the next attempt to resume.
                    raise _MirrorFailed(f"interrupted after {done} bytes ({_reason(exc)})") from None
                if not chunk:
                    break
                fh.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                emit(progress, "download", spec.filename, done=done, total=total, url=url)
    if total is not None and done < total:
        # http.client returns short reads, not errors, when a connection drops mid-body;
        # without this a file of unpublished size could be kept truncated.
        raise _MirrorFailed(f"ended after {done} of {total} bytes")
    return _finish(spec, part, digest)


def _finish(spec: FileSpec, part: Path, digest) -> str:
    size = part.stat().st_size
    if spec.size is not None and size != spec.size:
        if size < spec.size:
            raise _MirrorFailed(f"ended after {size} of {spec.size} bytes")
        raise _MirrorFailed(f"delivered {size} bytes, expected {spec.size}", bad_bytes=True)
    hexdigest = digest.hexdigest()
    if spec.sha256 is not None and hexdigest != spec.sha256:
        raise _MirrorFailed(f"SHA-256 mismatch (got {hexdigest[:12]}…)", bad_bytes=True)
    return hexdigest


def _origin_path(part: Path) -> Path:
    return part.with_name(part.name + ".url")


def _part_origin(part: Path) -> str | None:
    try:
        return _origin_path(part).read_text().strip()
    except OSError:
        return None


def _discard_part(part: Path) -> None:
    part.unlink(missing_ok=True)
    _origin_path(part).unlink(missing_ok=True)


def _hash_existing(part: Path, digest):
    with open(part, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest


def _content_range(value: str) -> tuple[int | None, int | None]:
    """``bytes 100-199/1000`` -> (100, 1000); unknown parts are None."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        start = int(span.split("-")[0])
        return start, (int(total) if total.isdigit() else None)
    except ValueError:
        return None, None


def _reason(exc: BaseException) -> str:
    # URLError says "<urlopen error [Errno 111] ...>": its cause alone reads better.
    cause = getattr(exc, "reason", None)
    return one_line(cause if isinstance(cause, BaseException) else exc)
