"""Stage timing for benchmarks: wall time per stage of the steps :func:`clipgen.run.loop.optimize`
takes, measured through the loop's own callbacks, so the step timed is the step a run takes.

On CUDA every mark synchronises the device: for benchmarks only; runs use no timer.
"""

from __future__ import annotations

import time

import torch

from clipgen.run.loop import StepState


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work, so the wall clock measures it (a no-op off CUDA)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StageTimer:
    """Wall time per named stage, charged at each ``mark`` since the previous one."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals: dict[str, float] = {}
        self.started = self._last = time.perf_counter()

    def reset(self) -> None:
        """Forget what was charged so far; the clock starts now."""
        sync(self.device)
        self.totals = {}
        self.started = self._last = time.perf_counter()

    def mark(self, stage: str) -> None:
        sync(self.device)
        now = time.perf_counter()
        self.totals[stage] = self.totals.get(stage, 0.0) + now - self._last
        self._last = now

    def elapsed(self) -> float:
        """Seconds since the last reset, once the device is done."""
        sync(self.device)
        return time.perf_counter() - self.started


class TimedObjective:
    """The objective protocol (``loss_and_backward(image)``) over an objective whose
    ``loss_and_backward(image, timer)`` marks its stages: generator, cutouts, clip, backward."""

    def __init__(self, objective, timer: StageTimer):
        self.objective, self.timer = objective, timer
        self.last_image: torch.Tensor | None = None

    def loss_and_backward(self, image: torch.Tensor) -> torch.Tensor:
        self.last_image = image.detach()
        return self.objective.loss_and_backward(image, self.timer)


class StepClock:
    """Loop callbacks that time every step after the first ``warmup``.

    Pass :meth:`after_update` as the first callback and :meth:`after_callbacks` as the last:
    the optimiser's stage ends where the callbacks begin, the callbacks' stage where the
    step ends. The next step's generator stage (zero_grad and forward) runs from there to
    the objective's first mark. Steps redone after a numerical rewind are timed again, so
    :attr:`steps` counts the steps taken, not the steps asked for.
    """

    def __init__(self, device: torch.device, warmup: int):
        self.timer = StageTimer(device)
        self.warmup = warmup
        self.steps = 0
        self.warmup_seconds = 0.0  # the untimed first steps: where a compile, if any, is paid
        self._timed: TimedObjective | None = None

    def objective(self, objective) -> TimedObjective:
        self._timed = TimedObjective(objective, self.timer)
        return self._timed

    @property
    def last_image(self) -> torch.Tensor | None:
        """The image the last timed step rendered (None before the first)."""
        return None if self._timed is None else self._timed.last_image

    def after_update(self, state: StepState) -> None:
        self.timer.mark("optimizer")

    def after_callbacks(self, state: StepState) -> None:
        if state.step == self.warmup:
            self.warmup_seconds = self.timer.elapsed()
            self.timer.reset()  # the warm-up (and step 0's callbacks) stays out of the totals
            self.steps = 0
        elif state.step > self.warmup:
            self.timer.mark("callbacks")
            self.steps += 1

    def per_step(self, stages: tuple[str, ...]) -> dict[str, float]:
        return {stage: self.timer.totals.get(stage, 0.0) / max(self.steps, 1) for stage in stages}
