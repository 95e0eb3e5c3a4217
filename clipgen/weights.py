"""Weights registry: named pretrained files, their mirrors, a local cache, downloads.

An entry is a name, a kind (``vqgan`` now; ``dalle-dvae`` or ``biggan-deep`` later), a
description and the files it consists of. Each file lists every known mirror, its size
and SHA-256 where they are published. Adding a model is adding one :class:`WeightsEntry`
to :data:`ENTRIES`; nothing else in this module knows about particular models.

Cache layout: ``$CLIPGEN_HOME/<entry name>/<filename>`` (default ``~/.cache/clipgen``).
Next to every verified file sits ``<filename>.verified.json`` with the digest that was
checked (the registry's, or, where none is published, the one seen at download time) and
the size and mtime it had then, so later runs can trust an unchanged file without
re-hashing a gigabyte, and a changed one is re-hashed before it is used.

Nothing here prints: progress goes to an optional callback (the CLI draws a rich bar) and
problems are raised as typed errors whose message names the fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from clipgen.errors import MissingWeightsError, ModelError, OutputError, did_you_mean

_CHUNK = 1 << 20
_TIMEOUT_S = 30
_TRUE = {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- registry


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


_HEIBOX = "https://heibox.uni-heidelberg.de"
_SOMNAI = "https://huggingface.co/Somnai/pytti-vqgan-checkpoints/resolve/debc22c8f285c7734980c464ff992d335dde6e9a"
_PXLPSHR = "https://huggingface.co/pxlpshr/pytti-models/resolve/main/vqgan"
_PIXRAY = "https://github.com/pixray/pixray/releases/download/v1.7.1"
_ELEIBER = "https://github.com/Eleiber/VQGAN-Mirrors/releases/download/0.0.1"
_IO_COMMUNITY = "http://mirror.io.community/blob/vqgan"

#: Local file names of a VQGAN entry; the generator opens these.
VQGAN_CONFIG = "model.yaml"
VQGAN_CHECKPOINT = "last.ckpt"

# Sources, sizes and digests: shared/weights-facts.md (public pages, 2026-11-21). Mirrors
# come first where they are hash-verified re-hosts on a CDN; the SHA-256 check makes every
# mirror equally trustworthy where a digest is known. Where none is published the first
# mirror that answers wins and its digest is recorded.
ENTRIES: tuple[WeightsEntry, ...] = (
    WeightsEntry(
        name="imagenet-f16-16384",
        kind="vqgan",
        description="taming-transformers VQGAN, ImageNet, 16x downsampling, 16384 codes (default)",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/274fb24ed38341bfa753/?dl=1",
                    f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    f"{_SOMNAI}/imagenet/imagenet.yaml",
                    f"{_PXLPSHR}/imagenet.yaml",
                ),
                size=692,
                sha256="00e2c6189926f1d89ecfef73e9598db77981c1982f0555fbade963ffd16143c7",
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/867b05fc8c4841768640/?dl=1",
                    f"{_HEIBOX}/d/a7530b09fed84f80a887/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    f"{_SOMNAI}/imagenet/imagenet.ckpt",
                    f"{_PXLPSHR}/imagenet.ckpt",
                    "https://huggingface.co/datasets/erwann/face_editor_model_ckpt/resolve/"
                    "530c038d53be79cd1f5aa7758844f38cf5ac1ef7/imagenet.ckpt",
                ),
                size=980_092_370,
                sha256="845a68805098cb666420d5db93df53f3a3b6dd443e6dd85c05759c5b998cd663",
                retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_16384.ckpt",),
            ),
        ),
    ),
    WeightsEntry(
        name="imagenet-f16-1024",
        kind="vqgan",
        description="taming-transformers VQGAN, ImageNet, 16x downsampling, 1024 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/6ecf2af6c658432c8298/?dl=1",
                    f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/configs/model.yaml",
                ),
                approx_size=645,
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/140747ba53464f49b476/?dl=1",
                    f"{_HEIBOX}/d/8088892a516d4e3baf92/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    "https://huggingface.co/Nehc/vqgan_imagenet_f16_1024/resolve/main/ckpts/last.ckpt",
                ),
                approx_size=958_000_000,
                retired_urls=(f"{_IO_COMMUNITY}/vqgan_imagenet_f16_1024.ckpt",),
            ),
        ),
    ),
    WeightsEntry(
        name="gumbel-f8-8192",
        kind="vqgan",
        description="taming-transformers Gumbel VQGAN, OpenImages, 8x downsampling, 8192 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_HEIBOX}/f/b24d14998a8d4f19a34f/?dl=1",
                    f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fconfigs%2Fmodel.yaml&dl=1",
                    f"{_SOMNAI}/openimages/openimages.yaml",
                    f"{_PXLPSHR}/openimages.yaml",
                    "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/config.yaml",
                ),
                size=745,
                sha256="91110bab325067b37f85d1e75895a837d59c292bae4f3097f80c518714d5caff",
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_HEIBOX}/f/34a747d5765840b5a99d/?dl=1",
                    f"{_HEIBOX}/d/2e5662443a6b4307b470/files/?p=%2Fckpts%2Flast.ckpt&dl=1",
                    f"{_SOMNAI}/openimages/openimages.ckpt",
                    f"{_PXLPSHR}/openimages.ckpt",
                    "https://huggingface.co/neggles/vaedump/resolve/main/taming/vq-gumbel-f8-8192/model.ckpt",
                ),
                size=376_581_823,
                sha256="5cd6c74810ab97e00e942c25403f73afc081e8b19987b31ec0d9ff5b68e7ab14",
            ),
        ),
    ),
    WeightsEntry(
        name="wikiart-f16-16384",
        kind="vqgan",
        description="VQGAN fine-tuned on WikiArt, 16x downsampling, 16384 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(
                    f"{_PIXRAY}/vqgan_wikiart_16384.yaml",
                    f"{_SOMNAI}/wikiart/wikiart.yaml",
                    f"{_PXLPSHR}/wikiart.yaml",
                    f"{_ELEIBER}/wikiart_16384.yaml",
                ),
                size=920,
                sha256="6e78241d2828ff35b8381839ce249c24a6c468ed429760d33a25e98e7f24499a",
                retired_urls=("http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.yaml",),
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(
                    f"{_PIXRAY}/vqgan_wikiart_16384.ckpt",
                    f"{_SOMNAI}/wikiart/wikiart.ckpt",
                    f"{_PXLPSHR}/wikiart.ckpt",
                    f"{_ELEIBER}/wikiart_16384.ckpt",
                ),
                size=1_005_327_541,
                sha256="bd08bb46301f98be1712bb2be9f8868cea30b53137cd985d4d6e8da8b3e02c36",
                retired_urls=(
                    "http://eaidata.bmk.sh/data/Wikiart_16384/wikiart_f16_16384_8145600.ckpt",
                    f"{_IO_COMMUNITY}/wikiart_16384.ckpt",
                ),
            ),
        ),
    ),
    WeightsEntry(
        name="wikiart-f16-1024",
        kind="vqgan",
        description="VQGAN fine-tuned on WikiArt, 16x downsampling, 1024 codes",
        files=(
            FileSpec(
                VQGAN_CONFIG,
                urls=(f"{_PIXRAY}/vqgan_wikiart_1024.yaml", f"{_ELEIBER}/wikiart_1024.yaml"),
                retired_urls=(f"{_IO_COMMUNITY}/wikiart.yaml",),
            ),
            FileSpec(
                VQGAN_CHECKPOINT,
                urls=(f"{_PIXRAY}/vqgan_wikiart_1024.ckpt", f"{_ELEIBER}/wikiart_1024.ckpt"),
                approx_size=958_000_000,
                # mirror.io.community's "wikiart.ckpt" was this 1024-code model (taming issue #53).
                retired_urls=(f"{_IO_COMMUNITY}/wikiart.ckpt",),
            ),
        ),
    ),
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


# --------------------------------------------------------------------------- cache


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
    _atomic_write_text(_record_path(path), json.dumps(record, indent=1) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


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


# --------------------------------------------------------------------------- download


class _MirrorFailed(Exception):
    """One mirror did not deliver the right bytes; the next one is tried."""

    def __init__(self, reason: str, bad_bytes: bool = False):
        super().__init__(reason)
        self.bad_bytes = bad_bytes


def _user_agent() -> str:
    from clipgen import __version__

    # Some hosts refuse urllib's default "Python-urllib/x.y".
    return f"clipgen/{__version__} (+https://github.com/; urllib)"


def download(entry: str | WeightsEntry, *, progress: ProgressCallback | None = None,
             offline: bool = False, force: bool = False) -> dict[str, Path]:
    """Fetch every missing or unverifiable file of an entry; returns their paths.

    Each file goes to ``<filename>.part`` in the cache folder (resumed with an HTTP
    Range request when a previous attempt was interrupted), is checked against the
    published size and SHA-256, and only then moved into place with ``os.replace``, so
    a reader never sees a half-written or unverified file.
    """
    entry = get_entry(entry)
    if is_offline(offline):
        raise MissingWeightsError(
            f"cannot download {entry.name!r} while offline (CLIPGEN_OFFLINE=1 or --offline); "
            f"go online and run: {_download_hint(entry)}"
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
                        _check_file(entry, spec, path, progress)
                        _emit(progress, "skip", spec.filename, total=path.stat().st_size)
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
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent downloads are the user's call
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
    part = _part_path(path)
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
                _emit(progress, "mirror-failed", spec.filename, url=url, message=str(exc))
                break
            os.replace(part, path)
            _origin_path(part).unlink(missing_ok=True)
            _write_record(path, digest, source=url, published=spec.sha256 is not None)
            _emit(progress, "done", spec.filename, done=path.stat().st_size, total=path.stat().st_size, url=url)
            return
    summary = "; ".join(failures[:3]) + (f"; and {len(failures) - 3} more" if len(failures) > 3 else "")
    if saw_bad_bytes:
        raise ModelError(
            f"no mirror of {entry.name}/{spec.filename} delivered the published file ({summary}); "
            f"nothing was kept; try again later"
        )
    raise MissingWeightsError(
        f"could not download {entry.name}/{spec.filename} ({summary or 'no mirrors'}); "
        f"check the connection and run: {_download_hint(entry)}"
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
    headers = {"User-Agent": _user_agent()}
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
            _atomic_write_text(_origin_path(part), url)
        if spec.size is not None and total is not None and total != spec.size:
            raise _MirrorFailed(f"offers {total} bytes, expected {spec.size}")
        total = total if total is not None else spec.size
        _emit(progress, "start", spec.filename, done=have, total=total, url=url)
        done = have
        with open(part, mode) as fh:  # disk errors propagate: no other mirror would help
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                    # The part stays for the next attempt to resume.
                    raise _MirrorFailed(f"interrupted after {done} bytes ({_reason(exc)})") from None
                if not chunk:
                    break
                fh.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                _emit(progress, "download", spec.filename, done=done, total=total, url=url)
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
        while chunk := fh.read(_CHUNK):
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
    reason = getattr(exc, "reason", None) or exc
    return str(reason).splitlines()[0] if str(reason) else type(exc).__name__


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
