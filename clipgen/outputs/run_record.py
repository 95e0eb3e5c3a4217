"""``run.json``: a run's settings and outcome, next to its images.

A single run writes it twice: ``status: running`` with the settings before the first
step, then the summary when it ends (finished, interrupted or failed). Batches read it
to skip finished prompts and to build the contact sheet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipgen import __version__
from clipgen.atomic import write_text

RUN_JSON = "run.json"


def write_record(folder: Path, record: dict[str, Any]) -> Path:
    path = folder / RUN_JSON
    write_text(path, json.dumps(record, indent=2))
    return path


def read_record(folder: Path) -> dict[str, Any] | None:
    """The folder's ``run.json``, or None when it is missing or unreadable."""
    try:
        return json.loads((folder / RUN_JSON).read_text())
    except (OSError, ValueError):
        return None


def is_finished(folder: Path) -> bool:
    record = read_record(folder)
    return bool(record) and record.get("status") == "finished"


class RunRecord:
    """The ``run.json`` of one run: started with its settings, completed with its summary."""

    def __init__(self, folder: Path, settings: dict[str, Any], **fields: Any):
        self.path = folder / RUN_JSON
        self.data: dict[str, Any] = {"clipgen": __version__, "status": "running", "settings": settings, **fields}
        write_record(folder, self.data)

    def complete(self, **fields: Any) -> Path:
        self.data.update(fields)
        return write_record(self.path.parent, self.data)
