"""The Python API, which the CLI itself calls: ``clipgen.generate(prompt, **settings)``,
``clipgen.api.resume(folder)``, ``clipgen.batch(file_or_prompts, **settings)``. A thin
facade over :mod:`clipgen.run`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from clipgen.config.settings import Settings, resolve_run_settings
from clipgen.run.batch import Outcome, parse_batch_text, read_batch_file, run_batch, settings_for
from clipgen.run.ray_batch import RayEvents, RayOptions, run_batch_on_ray
from clipgen.run.runner import resume as resume_any
from clipgen.run.runner import run
from clipgen.run.shards import parse_shard
from clipgen.run.single import Result, RunInterrupted

__all__ = ["generate", "run", "resume", "batch", "Outcome", "Result", "RunInterrupted", "Settings"]


def generate(prompt: str | None = None, *, preset: str | None = None, set: list[str] | None = None,
             callbacks: Iterable = (), **settings: Any) -> Result:
    """Generate an image for ``prompt``. Keyword arguments are settings (see ``Settings``);
    a generator's options go in a dict named after it, e.g. ``fourier={"decay": 1.5}``."""
    flags = dict(settings)
    if prompt is not None:
        flags["prompt"] = prompt
    return run(resolve_run_settings(preset=preset, flags=flags, assignments=set), callbacks=callbacks)


def resume(folder, callbacks: Iterable = (), steps: int | None = None, device: str | None = None) -> Result:
    """Continue an interrupted run in ``folder`` from its ``state.pt`` (optionally to more
    steps, or on another ``device``)."""
    return resume_any(folder, callbacks=callbacks, steps=steps, device=device)


def batch(source: str | Path | Iterable[str], *, preset: str | None = None, set: list[str] | None = None,
          out: str | Path = "outputs", resume: bool = False, shard: str | None = None,
          ray: str | None = None, workers: int | None = None, cpus_per_worker: int = 1,
          environ: Mapping[str, str] | None = None, on_done: Callable[[Outcome], None] | None = None,
          **settings: Any) -> list[Outcome]:
    """Run a batch as ``clipgen batch`` does: ``source`` is a prompt file or its lines
    (``"a prompt | seed=3"``). ``shard`` is ``"I/N"`` or ``"auto"`` (read from ``environ``,
    by default this process's environment); ``ray`` is ``"local"``, ``"auto"`` or an address,
    and runs the prompts on Ray workers (an existing ``ray.init`` is used as it is).
    Returns one :class:`Outcome` per prompt that got one, in file order."""
    if isinstance(source, (str, Path)):
        items = read_batch_file(source)
    else:
        items = parse_batch_text("\n".join(source), source="prompts")
    chosen = parse_shard(shard, os.environ if environ is None else environ).select(items)
    resolve = settings_for(preset, {**settings, "out": str(out)}, set)
    if ray is None:
        return run_batch(chosen, resolve, Path(out), resume=resume, on_done=on_done)
    options = RayOptions.at(ray, workers=workers, cpus_per_worker=cpus_per_worker)
    return run_batch_on_ray(chosen, resolve, Path(out), resume, options, RayEvents(on_done=on_done))
