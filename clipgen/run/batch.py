"""Batch prompt files: one prompt per line, with optional per-line overrides.

    # comments and blank lines are ignored
    a castle at dusk
    a castle at dawn | seed=3 steps=200 generator=vqgan

Each prompt line gets its own folder ``OUT/NNNN-<slug>`` (NNNN: its position among the
prompt lines), so shards, retries and ``--resume`` all agree on where a prompt's result
lives.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from clipgen.config.settings import Settings, resolve_run_settings
from clipgen.errors import ClipgenError, InputFileError, SettingsError
from clipgen.generators.base import FrozenModels
from clipgen.guidance.perceptor import Perceptor
from clipgen.inputs import read_text_file
from clipgen.outputs.contact_sheet import write_index
from clipgen.outputs.naming import slugify
from clipgen.outputs.run_record import is_finished, read_record
from clipgen.run.plan import RunPlan, plan_run
from clipgen.run.runner import is_prior_run, run_plan
from clipgen.run.runner import resume as resume_run
from clipgen.run.session import load_run_perceptor
from clipgen.run.single import Result, RunInterrupted


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
    return parse_batch_text(read_text_file(path, "batch file"), source=f"batch file {path}")


def settings_for(preset: str | None, flags: dict, assignments: list[str] | None) -> Callable[[BatchItem], Settings]:
    """Each item's settings: ``flags`` and ``assignments`` for every prompt, then the item's
    own overrides. The shared part is checked now, before any prompt runs."""
    resolve_run_settings(preset=preset, flags={**flags, "prompt": "x"}, assignments=assignments)

    def resolve(item: BatchItem) -> Settings:
        return resolve_run_settings(preset=preset, flags={**flags, "prompt": item.prompt},
                                    assignments=[*(assignments or []), *item.overrides])

    return resolve


def folder_name(item: BatchItem) -> str:
    return f"{item.index:04d}-{slugify(item.prompt)}"


@dataclass
class Outcome:
    item: BatchItem
    status: str  # finished, skipped, failed, interrupted
    folder: Path | None = None
    score: float | None = None
    seconds: float = 0.0
    seed: int | None = None
    error: str = ""
    attempts: int = 1  # more when a Ray worker died under it and another took it over


def item_folders(out: Path, item: BatchItem) -> list[Path]:
    """Every folder an attempt at this item made (``NNNN-slug``, ``NNNN-slug-2``…)."""
    return sorted(p for p in out.glob(f"{item.index:04d}-*") if p.is_dir()) if out.is_dir() else []


def existing_folder(out: Path, item: BatchItem) -> Path | None:
    """A folder from an earlier attempt at this item, finished ones first."""
    candidates = item_folders(out, item)
    finished = [c for c in candidates if is_finished(c)]
    resumable = [c for c in candidates if (c / "state.pt").is_file() or is_prior_run(c)]
    return (finished or resumable or [None])[0]


class KeptModels:
    """What a batch keeps loaded from prompt to prompt: CLIP ensembles (one per distinct
    set of models, device, precision and mode) and the generators' frozen decoders."""

    def __init__(self) -> None:
        self._perceptors: dict[tuple, Perceptor] = {}
        self.decoders = FrozenModels()

    def perceptor(self, plan: RunPlan) -> Perceptor:
        s = plan.settings
        key = (s.clip, str(plan.device), plan.dtype, plan.compiles, s.offline)
        if key not in self._perceptors:
            self._perceptors[key] = load_run_perceptor(plan)
        return self._perceptors[key]

    @property
    def perceptors(self) -> int:
        return len(self._perceptors)


def run_item(item: BatchItem, settings: Settings, out: Path, resume: bool, callbacks: Iterable,
             kept: KeptModels, previous: Path | None = None) -> Outcome:
    """Run one item, or skip it when finished; ``previous`` (or, with ``resume``, the
    item's own earlier folder) is continued from its saved state."""
    if previous is None and resume:
        previous = existing_folder(out, item)
    record = read_record(previous) if previous is not None else None
    if record is not None and record.get("status") == "finished":
        return Outcome(item, "skipped", previous, record.get("final_similarity"), record.get("seconds", 0.0),
                       record.get("seed"))
    result: Result
    if previous is not None:  # a state.pt or a prior run's run.json (existing_folder, or a dead worker's)
        result = resume_run(previous, callbacks=callbacks)
    else:
        plan = replace(plan_run(settings), kept=kept.decoders)
        result = run_plan(plan, callbacks=callbacks, perceptor=kept.perceptor(plan), folder_name=folder_name(item))
    return Outcome(item, "finished", result.paths["folder"], result.final_similarity, result.seconds,
                   result.settings.seed)


def attempt_item(item: BatchItem, settings: Settings, out: Path, resume: bool, callbacks: Iterable,
                 kept: KeptModels, previous: Path | None = None) -> Outcome:
    """:func:`run_item`, with a failure of the item's own (bad settings, a missing model, a
    crash in its run) or a requested stop turned into its outcome."""
    try:
        return run_item(item, settings, out, resume, callbacks, kept, previous)
    except RunInterrupted as stopped:
        return Outcome(item, "interrupted", stopped.folder, error=str(stopped))
    except ClipgenError as exc:
        return Outcome(item, "failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken prompt must not end a long batch
        return Outcome(item, "failed", error=f"{type(exc).__name__}: {exc}")


def run_batch(items: list[BatchItem], resolve: Callable[[BatchItem], Settings], out: Path, resume: bool = False,
              on_start=None, on_done=None, callbacks_for=None) -> list[Outcome]:
    """Run every item in turn; a failing item is recorded and the batch goes on, a stopped
    one (Ctrl-C) ends the batch after saving its state.

    ``resolve(item) -> Settings``; models are loaded once per distinct CLIP set and device.
    """
    kept = KeptModels()
    outcomes = []
    for item in items:
        if on_start:
            on_start(item)
        try:
            settings = resolve(item)
        except ClipgenError as exc:  # this line's own overrides are bad
            outcome = Outcome(item, "failed", error=str(exc))
        else:
            outcome = attempt_item(item, settings, out, resume, callbacks_for(item) if callbacks_for else [],
                                   kept)
        outcomes.append(outcome)
        if outcome.status == "finished":
            write_index(out)  # the contact sheet grows as prompts finish
        if on_done:
            on_done(outcome)
        if outcome.status == "interrupted":
            break
    return outcomes

