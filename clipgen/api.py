"""The Python API, which the CLI itself calls: ``clipgen.generate(prompt, **settings)``,
``clipgen.api.resume(folder)``. A thin facade over :mod:`clipgen.run`."""

from __future__ import annotations

from typing import Any, Iterable

from clipgen.config.settings import Settings, resolve_run_settings
from clipgen.run.runner import resume as resume_any
from clipgen.run.runner import run
from clipgen.run.single import Result, RunInterrupted

__all__ = ["generate", "run", "resume", "Result", "RunInterrupted", "Settings"]


def generate(prompt: str | None = None, *, preset: str | None = None, set: list[str] | None = None,
             callbacks: Iterable = (), **settings: Any) -> Result:
    """Generate an image for ``prompt``. Keyword arguments are settings (see ``Settings``);
    a generator's options go in a dict named after it, e.g. ``fourier={"decay": 1.5}``."""
    flags = dict(settings)
    if prompt is not None:
        flags["prompt"] = prompt
    return run(resolve_run_settings(preset=preset, flags=flags, assignments=set), callbacks=callbacks)


def resume(folder, callbacks: Iterable = (), steps: int | None = None) -> Result:
    """Continue an interrupted run in ``folder`` from its ``state.pt`` (optionally to more steps)."""
    return resume_any(folder, callbacks=callbacks, steps=steps)
