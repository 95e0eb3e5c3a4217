"""Which prompts of a batch file this process takes: ``--shard I/N``, or ``--shard auto``
where a scheduler starts one copy per array task and says which one it is.

The environment is read once, by the CLI, and handed in as a mapping, so these stay
pure functions. ``auto`` understands:

* SLURM job arrays (``sbatch --array=0-7`` or ``1-8``, steps like ``0-14:2`` too):
  ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``, ``SLURM_ARRAY_TASK_MIN`` and
  ``SLURM_ARRAY_TASK_STEP`` (default 1).
* Kubernetes indexed Jobs: ``JOB_COMPLETION_INDEX``; the count is not in a pod's
  environment, so it comes from ``--shard auto/N`` or ``CLIPGEN_SHARD_COUNT`` (set it to
  the Job's ``completions``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence, TypeVar

from clipgen.errors import SettingsError

#: The variable a Kubernetes Job sets for the count (there is no built-in one).
COUNT_VARIABLE = "CLIPGEN_SHARD_COUNT"

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int
    source: str = "--shard"  # where index and count came from, for messages

    def select(self, items: Sequence[T]) -> list[T]:
        """Every ``count``-th item starting at ``index``: the shards together cover each item once."""
        return [item for position, item in enumerate(items) if position % self.count == self.index]


def parse_shard(spec: str | None, environ: Mapping[str, str] | None = None) -> Shard:
    """``None`` (everything), ``I/N``, ``auto`` or ``auto/N`` (from ``environ``)."""
    if not spec:
        return Shard(0, 1)
    head, _, tail = spec.partition("/")
    if head == "auto":
        return shard_from_environment(environ or {}, _count(spec, tail) if tail else None)
    try:
        index, count = int(head), int(tail)
    except ValueError:
        raise SettingsError(f"--shard {spec!r}: expected I/N (e.g. 0/4), auto or auto/N") from None
    return _checked(index, count, f"--shard {spec}")


def shard_from_environment(environ: Mapping[str, str], count: int | None = None) -> Shard:
    """The shard a SLURM array task or a Kubernetes indexed-Job pod is."""
    found = [shard for shard in (_slurm(environ), _kubernetes(environ, count)) if shard is not None]
    if not found:
        raise SettingsError("--shard auto: no SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX in the environment; "
                            "run it as a SLURM array task or a Kubernetes indexed Job, or give --shard I/N")
    if len(found) == 2 and (found[0].index, found[0].count) != (found[1].index, found[1].count):
        raise SettingsError(f"--shard auto: {found[0].source} says shard {found[0].index}/{found[0].count} but "
                            f"{found[1].source} says {found[1].index}/{found[1].count}; unset one of them")
    shard = found[0]
    if count is not None and count != shard.count:
        raise SettingsError(f"--shard auto/{count}: {shard.source} says there are {shard.count} tasks; "
                            f"use --shard auto")
    return shard


def _slurm(environ: Mapping[str, str]) -> Shard | None:
    if "SLURM_ARRAY_TASK_ID" not in environ:
        return None
    names = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP")
    missing = [n for n in names[:2] if n not in environ]
    if missing:
        raise SettingsError(f"--shard auto: SLURM_ARRAY_TASK_ID is set but {missing[0]} is not; "
                            "submit with sbatch --array, or give --shard I/N")
    task, count, low, step = (_integer(environ, n, default) for n, default in zip(names, (None, None, 0, 1)))
    if step < 1 or (task - low) % step:
        raise SettingsError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} is not on the array's grid "
                            f"(min {low}, step {step}); give --shard I/N")
    return _checked((task - low) // step, count, "SLURM_ARRAY_TASK_ID/COUNT")


def _kubernetes(environ: Mapping[str, str], count: int | None) -> Shard | None:
    if "JOB_COMPLETION_INDEX" not in environ:
        return None
    index = _integer(environ, "JOB_COMPLETION_INDEX", None)
    if count is None:
        if COUNT_VARIABLE not in environ:
            raise SettingsError(f"--shard auto: JOB_COMPLETION_INDEX is set but not the count; set {COUNT_VARIABLE} "
                                "to the Job's completions, or give --shard auto/N")
        count = _integer(environ, COUNT_VARIABLE, None)
    return _checked(index, count, "JOB_COMPLETION_INDEX")


def _integer(environ: Mapping[str, str], name: str, default: int | None) -> int:
    value = environ.get(name)
    if value is None and default is not None:
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise SettingsError(f"--shard auto: {name}={value!r} is not a whole number") from None


def _count(spec: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"--shard {spec!r}: expected auto/N with N a whole number") from None


def _checked(index: int, count: int, source: str) -> Shard:
    if count < 1 or not 0 <= index < count:
        raise SettingsError(f"{source}: shard {index} of {count} is out of range (need 0 <= I < N)")
    return Shard(index, count, source)
