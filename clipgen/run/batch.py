"""Batch prompt files: one prompt per line, with optional per-line overrides.

    # comments and blank lines are ignored
    a castle at dusk
    a castle at dawn | seed=3 steps=200 generator=vqgan

Each prompt line gets its own folder ``OUT/NNNN-<slug>`` (NNNN: its position among the
prompt lines), so shards, retries and ``--resume`` all agree on where a prompt's result
lives.
"""

from __future__ import annotations

import html
import json
import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from clipgen.errors import InputFileError, SettingsError


@dataclass(frozen=True)
class BatchItem:
    index: int  # position among prompt lines, from 0
    line: int  # 1-based line number in the file, for messages
    prompt: str
    overrides: tuple[str, ...]  # "key=value" strings, as for --set


def parse_batch_text(text: str, source: str = "batch file") -> list[BatchItem]:
    items = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        prompt, bar, tail = line.rpartition(" | ") if " | " in line else (line, "", "")
        prompt = prompt.strip()
        try:
            overrides = tuple(shlex.split(tail)) if bar else ()
        except ValueError as exc:
            raise SettingsError(f"{source} line {number}: cannot read the overrides ({exc})") from None
        bad = [o for o in overrides if "=" not in o]
        if bad:
            raise SettingsError(f"{source} line {number}: override {bad[0]!r} is not key=value "
                                "(write: a prompt | seed=3 steps=200)")
        items.append(BatchItem(index=len(items), line=number, prompt=prompt, overrides=overrides))
    if not items:
        raise InputFileError(f"{source} has no prompts (only blank lines or # comments)")
    return items


def read_batch_file(path: str | Path) -> list[BatchItem]:
    from clipgen.inputs import read_text_file

    return parse_batch_text(read_text_file(path, "batch file"), source=f"batch file {path}")


def parse_shard(spec: str | None) -> tuple[int, int]:
    if not spec:
        return 0, 1
    try:
        index, count = (int(v) for v in spec.split("/"))
    except ValueError:
        raise SettingsError(f"--shard {spec!r}: expected I/N, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise SettingsError(f"--shard {spec!r}: need 0 <= I < N")
    return index, count


def select_shard(items: list[BatchItem], index: int, count: int) -> list[BatchItem]:
    """Every ``count``-th item starting at ``index``: shards together cover each item once."""
    return [item for item in items if item.index % count == index]


def folder_name(item: BatchItem) -> str:
    from clipgen.outputs.naming import slugify

    return f"{item.index:04d}-{slugify(item.prompt)}"


def run_record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / "run.json").read_text())
    except (OSError, ValueError):
        return None


def is_finished(folder: Path) -> bool:
    record = run_record(folder)
    return bool(record) and record.get("status") == "finished"


def write_index(out: Path) -> Path:
    """``OUT/index.html``: a contact sheet of every finished run folder, with relative links."""
    from clipgen.atomic import write_text

    cards = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        record = run_record(folder)
        if not record or record.get("status") != "finished":
            continue
        image = Path(record["files"]["image"])
        rel = f"{folder.name}/{image.name}"
        cards.append(
            f'<figure><a href="{html.escape(rel)}"><img src="{html.escape(rel)}" loading="lazy"></a>'
            f"<figcaption><b>{html.escape(record.get('prompt', ''))}</b><br>seed {record.get('seed')} · "
            f"score {record.get('final_similarity', 0):.3f} · {record.get('seconds', 0):.1f} s · "
            f'<a href="{html.escape(folder.name)}/run.json">run.json</a></figcaption></figure>')
    page = ("<!doctype html><meta charset='utf-8'><title>clipgen batch</title><style>"
            "body{font-family:sans-serif;display:flex;flex-wrap:wrap;gap:12px}"
            "figure{width:256px;margin:0}img{width:256px;image-rendering:pixelated}</style>"
            + "".join(cards))
    path = out / "index.html"
    write_text(path, page)
    return path


@dataclass
class Outcome:
    item: BatchItem
    status: str  # finished, skipped, failed
    folder: Path | None = None
    score: float | None = None
    seconds: float = 0.0
    seed: int | None = None
    error: str = ""


def existing_folder(out: Path, item: BatchItem) -> Path | None:
    """A folder from an earlier attempt at this item, finished ones first."""
    if not out.is_dir():
        return None
    candidates = sorted(out.glob(f"{item.index:04d}-*"))
    finished = [c for c in candidates if is_finished(c)]
    resumable = [c for c in candidates if (c / "state.pt").is_file()]
    return (finished or resumable or [None])[0]


def run_batch(items: list[BatchItem], resolve, out: Path, resume: bool = False,
              on_start=None, on_done=None, callbacks_for=None) -> list[Outcome]:
    """Run every item; a failing item is recorded and the batch goes on.

    ``resolve(item) -> Settings``; models are loaded once per distinct CLIP set and device.
    """
    from clipgen import api
    from clipgen.hardware import resolve_device
    from clipgen.errors import ClipgenError
    from clipgen.run.session import env_offline, load_run_perceptor

    perceptors: dict[tuple, Any] = {}
    outcomes = []
    for item in items:
        if on_start:
            on_start(item)
        try:
            settings = resolve(item)
            previous = existing_folder(out, item) if resume else None
            if previous is not None and is_finished(previous):
                record = run_record(previous) or {}
                outcome = Outcome(item, "skipped", previous, record.get("final_similarity"),
                                  record.get("seconds", 0.0), record.get("seed"))
            else:
                callbacks = callbacks_for(item) if callbacks_for else []
                if previous is not None:
                    result = api.resume(previous, callbacks=callbacks)
                else:
                    offline = settings.offline or env_offline()
                    key = (settings.clip, settings.device, settings.precision, settings.compile, offline)
                    if key not in perceptors:
                        perceptors[key] = load_run_perceptor(replace(settings, offline=offline),
                                                             resolve_device(settings.device))
                    result = api.run(settings, callbacks=callbacks, perceptor=perceptors[key],
                                     folder_name=folder_name(item))
                outcome = Outcome(item, "finished", result.paths["folder"], result.final_similarity,
                                  result.seconds, result.settings.seed)
        except ClipgenError as exc:
            outcome = Outcome(item, "failed", error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken prompt must not end a long batch
            outcome = Outcome(item, "failed", error=f"{type(exc).__name__}: {exc}")
        outcomes.append(outcome)
        if on_done:
            on_done(outcome)
    return outcomes
