"""Pretrained weights: a registry of named files, a local verified cache, downloads.

- :mod:`.registry`: the entries (files, mirrors, sizes, digests) and lookups by name,
  built from the data in :mod:`.entries` with the builder in :mod:`.spec`;
- :mod:`.records`: verification records, file checks and the progress events;
- :mod:`.cache`: the cache folder, status/resolve/verify (never the network);
- :mod:`.fetch`: downloading from mirrors with Range resume and a per-entry lock, and
  ``ensure`` (resolve, downloading first when allowed).

Everything callers use is re-exported here, so ``from clipgen import weights`` and
``weights.download(...)`` keep working. Nothing here prints or reads the environment for
the offline rule: callers pass ``offline`` (the CLI decides it), progress goes to an
optional callback (the CLI draws a rich bar) and problems are raised as typed errors whose
message names the fix.
"""

from __future__ import annotations

from clipgen.weights.cache import FileStatus, cache_dir, entry_dir, file_status, is_cached, resolve, verify
from clipgen.weights.fetch import download, ensure
from clipgen.weights.records import ProgressCallback, ProgressEvent, sha256_file
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
    "names",
    "resolve",
    "sha256_file",
    "verify",
]
