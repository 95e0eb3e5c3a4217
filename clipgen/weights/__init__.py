"""Pretrained weights: a registry of named files, a local verified cache, downloads.

- :mod:`.registry`: the entries (files, mirrors, sizes, digests) and lookups by name;
- :mod:`.cache`: the cache folder, verification records, status/resolve/ensure/verify and
  the progress events all of them report;
- :mod:`.fetch`: downloading from mirrors with Range resume and a per-entry lock.

Everything callers use is re-exported here, so ``from clipgen import weights`` and
``weights.download(...)`` keep working. Nothing here prints: progress goes to an optional
callback (the CLI draws a rich bar) and problems are raised as typed errors whose message
names the fix.
"""

from __future__ import annotations

from clipgen.weights.cache import (
    FileStatus,
    ProgressCallback,
    ProgressEvent,
    cache_dir,
    ensure,
    entry_dir,
    file_status,
    is_cached,
    is_offline,
    resolve,
    sha256_file,
    verify,
)
from clipgen.weights.fetch import download
from clipgen.weights.registry import (
    ENTRIES,
    REGISTRY,
    VQGAN_CHECKPOINT,
    VQGAN_CONFIG,
    FileSpec,
    WeightsEntry,
    entries,
    get_entry,
    human_size,
    names,
)

__all__ = [
    "ENTRIES",
    "REGISTRY",
    "VQGAN_CHECKPOINT",
    "VQGAN_CONFIG",
    "FileSpec",
    "FileStatus",
    "ProgressCallback",
    "ProgressEvent",
    "WeightsEntry",
    "cache_dir",
    "download",
    "ensure",
    "entries",
    "entry_dir",
    "file_status",
    "get_entry",
    "human_size",
    "is_cached",
    "is_offline",
    "names",
    "resolve",
    "sha256_file",
    "verify",
]
