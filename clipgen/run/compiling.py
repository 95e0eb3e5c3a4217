"""``--compile auto``: compile the CLIP image towers when this machine's own measurements
say that the compile pays for itself within the run's steps.

``clipgen bench --compile on`` and ``--compile off`` record what they measured, keyed by
machine (CPU model, capability, threads, torch version), device, precision, the CLIP
models and the cutouts per forward: eager and compiled seconds per step, and the
compile's seconds (the warm-up step's excess over a compiled step; a second compile of
the same graph hits inductor's cache and is cheaper, so this is an upper bound). A run
with ``--compile auto`` compiles when ``steps × (eager − compiled) > compile seconds``.
Without both measurements ``auto`` stays off: on a CPU an unmeasured compile costs
minutes and may save nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from clipgen.kernel_rates import machine_key, read_measurement, write_measurement


@dataclass(frozen=True)
class CompileRecord:
    eager_step: float | None = None
    compiled_step: float | None = None
    compile_seconds: float | None = None


@dataclass(frozen=True)
class CompileChoice:
    compile: bool
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def ledger_key(clip: tuple[str, ...], per_forward: int, dtype: torch.dtype, device: torch.device) -> str:
    return f"{machine_key()} | {device.type} | {dtype} | {','.join(clip)} | {per_forward} cutouts per forward"


def read_record(folder: Path | None, key: str) -> CompileRecord:
    data = read_measurement(folder, "compile", key) or {}
    return CompileRecord(data.get("eager_step"), data.get("compiled_step"), data.get("compile_seconds"))


def record_measurement(folder: Path, key: str, compiled: bool, step_seconds: float, warmup_seconds: float,
                       warmup_steps: int) -> CompileRecord:
    """Fold one bench measurement into the record for ``key`` and write it."""
    old = read_record(folder, key)
    if compiled:
        compile_seconds = max(warmup_seconds - step_seconds * warmup_steps, 0.0) if warmup_steps else None
        new = CompileRecord(old.eager_step, step_seconds, compile_seconds)
    else:
        new = CompileRecord(step_seconds, old.compiled_step, old.compile_seconds)
    write_measurement(folder, "compile", key, asdict(new))
    return new


def choose_compile(setting: str, steps: int, record: CompileRecord) -> CompileChoice:
    """``--compile on|off`` as given; ``auto`` by the record (off without one)."""
    if setting != "auto":
        return CompileChoice(setting == "on", "given")
    if None in (record.eager_step, record.compiled_step, record.compile_seconds):
        return CompileChoice(False, "auto: no compile measurement on this machine (clipgen bench --compile on, "
                                    "then --compile off, records one)")
    saved = steps * (record.eager_step - record.compiled_step)
    worth = saved > record.compile_seconds
    return CompileChoice(worth, f"auto: {steps} steps × {record.eager_step - record.compiled_step:.3f} s saved "
                                f"= {saved:.0f} s {'>' if worth else '≤'} {record.compile_seconds:.0f} s to compile")
