"""The optimisation loop. It computes; callbacks (frame writers, progress bars) do the I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from clipgen.errors import SettingsError
from clipgen.generators.base import Generator


@dataclass
class StepState:
    """What callbacks see after each step. ``step`` counts finished optimiser steps."""

    step: int
    total: int
    loss: torch.Tensor | None  # detached; None at step 0 (before any update)
    generator: Generator
    _image: torch.Tensor | None = field(default=None, repr=False)

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


def optimize(generator: Generator, objective: Callable[[torch.Tensor], torch.Tensor],
             optimizer: torch.optim.Optimizer, steps: int, callbacks: Iterable[Callback] = (),
             start_step: int = 0) -> None:
    """Run steps ``start_step+1 .. steps``; callbacks get step 0 first when starting fresh."""
    callbacks = list(callbacks)
    if start_step == 0:
        state = StepState(step=0, total=steps, loss=None, generator=generator)
        for callback in callbacks:
            callback(state)
    for step in range(start_step + 1, steps + 1):
        optimizer.zero_grad(set_to_none=True)
        loss = objective(generator())
        loss.backward()
        optimizer.step()
        generator.constrain_()
        state = StepState(step=step, total=steps, loss=loss.detach(), generator=generator)
        for callback in callbacks:
            callback(state)
