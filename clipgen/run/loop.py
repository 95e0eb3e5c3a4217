"""The optimisation loop. It computes; callbacks (frame writers, progress bars) do the I/O."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol

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
    average: object = None  # a ParameterAverage: images are rendered from it when given
    _image: torch.Tensor | None = field(default=None, repr=False)

    def objective_targets(self):
        """The targets the objective will aim at in the next step (prompt schedules change them)."""
        return getattr(self.objective, "targets", None)

    def _rendered(self):
        return self.average.applied() if self.average is not None else contextlib.nullcontext()

    def image(self) -> torch.Tensor:
        """The image to write ``(1, 3, H, W)``: the generator's current one, or its parameter
        average's; rendered once, only if asked."""
        if self._image is None:
            with torch.no_grad(), self._rendered():
                self._image = self.generator().detach()
        return self._image

    def svg(self) -> str:
        """The SVG to write, of the same parameters as :meth:`image` (vector generators)."""
        with self._rendered():
            return self.generator.to_svg()


Callback = Callable[[StepState], None]


def make_optimizer(name: str, groups: list[dict]) -> torch.optim.Optimizer:
    # Adam's fused kernel makes one pass over the parameters where the default makes a dozen:
    # the dVAE's 8.4 M logits took 41 ms a step on one Zen 5 core, fused 3.8 ms.
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point()
                for group in groups for p in group["params"]) or None
    if name == "adam":
        return torch.optim.Adam(groups, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, weight_decay=1e-2, fused=fused)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=0.9)
    raise SettingsError(f"unknown optimizer {name!r}; valid: adam, adamw, sgd")


def _finite_flag(tensors: Iterable[torch.Tensor]) -> torch.Tensor | None:
    """A device-side flag (no host sync): all of ``tensors`` are finite."""
    flags = [torch.isfinite(t).all() for t in tensors if t is not None]
    return torch.stack(flags).all() if flags else None


class _LastGood:
    """A copy of the parameters and optimiser state from the last verified step."""

    def __init__(self, generator: Generator, optimizer: torch.optim.Optimizer, step: int):
        self.generator, self.optimizer = generator, optimizer
        self.save(step)

    def save(self, step: int) -> None:
        self.step = step
        self.params = [p.detach().clone() for p in self.generator.parameters() if p.requires_grad]
        # Tensors are cloned directly; deepcopy of the whole state dict was a per-step cost.
        state = self.optimizer.state_dict()
        self.opt_state = {
            "state": {k: {n: (v.clone() if isinstance(v, torch.Tensor) else v) for n, v in s.items()}
                      for k, s in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"]),
        }

    @torch.no_grad()
    def restore(self) -> int:
        for p, saved in zip((p for p in self.generator.parameters() if p.requires_grad), self.params):
            p.copy_(saved)
        lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(self.opt_state)
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        return self.step


class LossObjective(Protocol):
    """What the loop optimises: backpropagates the loss of an image, returns it detached.
    :class:`clipgen.guidance.objective.Objective` is one; :class:`PlainLoss` makes one."""

    def loss_and_backward(self, image: torch.Tensor) -> torch.Tensor: ...


def _schedules(generator: Generator, objective: LossObjective) -> Callable[[int], None]:
    """Place every schedule at ``step`` finished steps: the generator's, and the objective's
    when it has one (latent weight decay, cut schedules)."""
    objective_hook = getattr(objective, "after_step", None)

    def place(step: int) -> None:
        generator.after_step(step)
        if objective_hook is not None:
            objective_hook(step)
    return place


@dataclass(frozen=True)
class PlainLoss:
    """The objective protocol over a plain ``loss(image) -> scalar`` function."""

    loss: Callable[[torch.Tensor], torch.Tensor]

    def loss_and_backward(self, image: torch.Tensor) -> torch.Tensor:
        loss = self.loss(image)
        loss.backward()
        return loss.detach()


def check_interval(device: torch.device, save_every: int, checkpoint_every: int) -> int:
    """How often the loop reads its finiteness flag: every step where that is free (CPU);
    on a GPU every few steps, on a step where frames and checkpoints fall anyway."""
    if device.type != "cuda":
        return 1
    return math.gcd(10, save_every or 10, checkpoint_every or 10)


def forward_backward(generator: Generator, objective: LossObjective) -> torch.Tensor:
    """One step's loss, backpropagated into the generator's parameters (returned detached)."""
    return objective.loss_and_backward(generator())


def optimize(generator: Generator, objective: LossObjective,
             optimizer: torch.optim.Optimizer, steps: int, callbacks: Iterable[Callback] = (),
             start_step: int = 0, should_stop: Callable[[], bool] = lambda: False,
             check_every: int = 1, average=None) -> int:
    """Run steps ``start_step+1 .. steps``; returns the last finished (verified) step.

    Callbacks get step 0 first when starting fresh. Every ``check_every`` steps (and at
    the end) the loop checks that loss, gradients and parameters stayed finite; if not,
    it restores the last verified state, halves the learning rate and goes on from
    there (callbacks see the redone steps again). ``generator.after_step`` (and the
    objective's, if it has one) is told the finished step after every step, once before
    the first and again after a rewind. ``average`` (a :class:`ParameterAverage`) is
    updated after every optimiser step and is what callbacks' images are rendered from.
    Checking reads a flag from the device, so on a GPU it is done only every few steps,
    never inside a step.
    """
    callbacks = list(callbacks)
    place = _schedules(generator, objective)
    place(start_step)  # so a resumed run's schedules start where they stopped
    if start_step == 0:
        state = StepState(step=0, total=steps, loss=None, generator=generator, objective=objective,
                          average=average)
        for callback in callbacks:
            callback(state)
    params = [p for p in generator.parameters() if p.requires_grad]
    last_good = _LastGood(generator, optimizer, start_step)
    retries = 0
    step = start_step
    pending: list[torch.Tensor] = []

    def verified() -> bool:
        flags = [f for f in (*pending, _finite_flag(params)) if f is not None]
        pending.clear()
        return bool(torch.stack(flags).all()) if flags else True

    while step < steps and not should_stop():
        optimizer.zero_grad(set_to_none=True)
        loss = forward_backward(generator, objective)
        flag = _finite_flag([loss, *(p.grad for p in params)])
        if flag is not None:
            pending.append(flag)
        optimizer.step()
        step += 1
        place(step)
        if average is not None:
            average.update()
        if step % check_every == 0 or step == steps:
            if not verified():
                retries += 1
                step = last_good.restore()
                place(step)
                if retries > MAX_NUMERIC_RETRIES:
                    raise NumericalError(
                        f"the loss kept becoming NaN/inf at step {step + 1} even after lowering the learning "
                        f"rate {MAX_NUMERIC_RETRIES} times; use a smaller --lr (the last good image is kept)")
                for group in optimizer.param_groups:
                    group["lr"] *= 0.5
                log.warning("non-finite loss or gradient after step %d: restored the last good state and "
                            "halved the learning rate to %.3g", step, optimizer.param_groups[0]["lr"])
                continue
            retries = 0
            last_good.save(step)
        state = StepState(step=step, total=steps, loss=loss, generator=generator, objective=objective,
                          average=average)
        for callback in callbacks:
            callback(state)
    if step != last_good.step and not verified():
        # Stopped between checks with a broken state: hand back the last verified one.
        step = last_good.restore()
        place(step)
    return step
