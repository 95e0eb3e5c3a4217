"""An exponential moving average of the optimised parameters (big-sleep's trick): the
optimiser steps the raw parameters, the written frames and final image come from the
average, which is smoother and less adversarial than any single step.

The average lives in the optimiser's own per-parameter state (key ``"ema"``), so the
checkpoint, resume and the loop's rewind after a non-finite step carry it with no code
of their own, and clearing the optimiser state (an animation's new frame) restarts it.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

KEY = "ema"


class ParameterAverage:
    """``update()`` after each optimiser step; ``applied()`` to render from the average."""

    def __init__(self, optimizer: torch.optim.Optimizer, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.optimizer, self.decay = optimizer, decay

    def _params(self) -> Iterator[torch.Tensor]:
        for group in self.optimizer.param_groups:
            yield from group["params"]

    @torch.no_grad()
    def update(self) -> None:
        """Fold the parameters in; the first update (after the first step) starts the average
        at them. Called after ``optimizer.step()``, so Adam has made its own state first."""
        for p in self._params():
            state = self.optimizer.state[p]
            if KEY in state:
                state[KEY].lerp_(p, 1.0 - self.decay)
            else:
                state[KEY] = p.detach().clone()

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The parameters hold the average inside the block (the raw ones where no average
        exists yet, e.g. at step 0), and their own values again after it."""
        swapped = []
        with torch.no_grad():
            for p in self._params():
                average = self.optimizer.state[p].get(KEY) if p in self.optimizer.state else None
                if average is not None:
                    swapped.append((p, p.detach().clone()))
                    p.copy_(average)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, raw in swapped:
                    p.copy_(raw)
