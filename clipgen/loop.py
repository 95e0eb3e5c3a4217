"""The optimisation loop. It computes; callbacks (frame writers, progress bars) do the I/O."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from clipgen.errors import ClipgenError, SettingsError
from clipgen.generators.base import Generator

log = logging.getLogger("clipgen")

#: Consecutive non-finite steps tolerated (each halves the learning rate) before giving up.
MAX_NUMERIC_RETRIES = 5


class NumericalError(ClipgenError):
    """The loss or parameters kept turning NaN/inf even at lower learning rates."""

    exit_code = 1


@dataclass
class StepState:
    """What callbacks see after each step. ``step`` counts finished optimiser steps."""

    step: int
    total: int
    loss: torch.Tensor | None  # detached; None at step 0 (before any update)
    generator: Generator
    objective: object = None
    _image: torch.Tensor | None = field(default=None, repr=False)

    def objective_targets(self):
        """The targets the objective will aim at in the next step (prompt schedules change them)."""
        return getattr(self.objective, "targets", None)

    def image(self) -> torch.Tensor:
        """The generator's current image ``(1, 3, H, W)``; rendered once, only if asked."""
        if self._image is None:
            with torch.no_grad():
                self._image = self.generator().detach()
        return self._image


Callback = Callable[[StepState], None]


def make_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(groups)
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=1e-2)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9)
    raise SettingsError(f"unknown optimizer {name!r}; valid: adam, adamw, sgd")


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]
    return bool(torch.stack(flags).all()) if flags else True


class _LastGood:
    """A copy of the parameters and optimiser state from the last step that stayed finite."""

    def __init__(self, generator: Generator, optimizer: torch.optim.Optimizer):
        self.generator, self.optimizer = generator, optimizer
        self.save()

    def save(self) -> None:
        self.params = [p.detach().clone() for p in self.generator.parameters() if p.requires_grad]
        self.opt_state = copy.deepcopy(self.optimizer.state_dict())

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in zip((p for p in self.generator.parameters() if p.requires_grad), self.params):
            p.copy_(saved)
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(self.opt_state)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr


def optimize(generator: Generator, objective: Callable[[torch.Tensor], torch.Tensor],
             optimizer: torch.optim.Optimizer, steps: int, callbacks: Iterable[Callback] = (),
             start_step: int = 0, should_stop: Callable[[], bool] = lambda: False) -> int:
    """Run steps ``start_step+1 .. steps``; returns the last finished step.

    Callbacks get step 0 first when starting fresh. A non-finite loss, gradient or
    parameter restores the last good state, halves the learning rate and retries.
    """
    callbacks = list(callbacks)
    if start_step == 0:
        state = StepState(step=0, total=steps, loss=None, generator=generator, objective=objective)
        for callback in callbacks:
            callback(state)
    params = [p for p in generator.parameters() if p.requires_grad]
    last_good = _LastGood(generator, optimizer)
    retries = 0
    step = start_step
    while step < steps and not should_stop():
        optimizer.zero_grad(set_to_none=True)
        loss = objective(generator())
        loss.backward()
        finite = _all_finite([loss, *(p.grad for p in params)])
        if finite:
            optimizer.step()
            generator.constrain_()
            finite = _all_finite(params)
        if not finite:
            retries += 1
            last_good.restore()
            if retries > MAX_NUMERIC_RETRIES:
                raise NumericalError(
                    f"the loss kept becoming NaN/inf at step {step + 1} even after lowering the learning "
                    f"rate {MAX_NUMERIC_RETRIES} times; use a smaller --lr (the last good image is kept)")
            for group in optimizer.param_groups:
                group["lr"] *= 0.5
            log.warning("non-finite loss or gradient at step %d: restored the last good state and "
                        "halved the learning rate to %.3g", step + 1, optimizer.param_groups[0]["lr"])
            continue
        retries = 0
        step += 1
        last_good.save()
        state = StepState(step=step, total=steps, loss=loss.detach(), generator=generator, objective=objective)
        for callback in callbacks:
            callback(state)
    return step
