"""Output folder names: a safe slug of the prompt that never collides with an earlier run."""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from clipgen.errors import OutputError

MAX_SLUG = 60


def slugify(text: str, fallback: str = "image") -> str:
    """Lower-case ASCII words joined by dashes; no path separators or dots survive."""
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", normalized.lower())
    slug = "-".join(words)[:MAX_SLUG].strip("-")
    return slug or fallback


def check_writable(out: str | Path) -> Path:
    """Fail early, before any work, if ``out`` cannot hold a run folder."""
    path = Path(out).expanduser()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise OutputError(f"output directory {path} cannot be created: {probe} is a file; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {path} is not writable ({probe} denies writing); choose another --out")
    return path


def make_run_dir(out: str | Path, slug: str) -> Path:
    """Create ``out/slug``, or ``out/slug-2``, ``-3``… if taken; returns the new folder."""
    root = check_writable(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output directory {root}: {exc.strerror}; choose another --out") from None
    for index in range(1, 100_000):
        candidate = root / (slug if index == 1 else f"{slug}-{index}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"cannot create {candidate}: {exc.strerror}; choose another --out") from None
        return candidate
    raise OutputError(f"too many runs named {slug!r} in {root}; choose another --out")
