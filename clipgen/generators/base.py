"""The generator contract: an ``nn.Module`` whose ``forward()`` is the image being optimised.

A generator subclasses :class:`Generator` and has:

- three declarations: ``Options`` (a frozen dataclass of :func:`clipgen.config.typed.option`
  fields; the settings resolver builds it from the preset/``--set`` section named after the
  generator, so invalid options, half-given file pairs and missing local files fail in its
  ``__post_init__`` before anything is loaded), ``default_lr`` and ``memory_factor``;
- ``__init__(size, options, context)``, which checks the size before loading any weights;
- one required hook, ``forward() -> (1, 3, H, W)`` in ``[0, 1]``, differentiable w.r.t.
  the parameters being optimised, and two optional ones:
  ``param_groups(lr)`` (default: one group of every ``requires_grad`` parameter; frozen
  networks are ``requires_grad_(False)`` and so left out) and ``after_step(step)``
  (default: nothing), where projections (clamps) and schedules live.

The loop calls ``after_step(step)`` with the number of finished optimiser steps: after
every step, once before the first (with the run's start step, so a resumed run places
its schedules right) and again after a rewind (with the restored step). A schedule must
therefore be a function of ``step`` alone, never a counter the hook ticks.

Capabilities are protocols, checked with ``isinstance`` (``issubclass`` for a class) and
nothing else: :class:`EncodesImages`, :class:`TokenGrid`, :class:`Regularized`,
:class:`VectorGraphic`, :class:`RandomStarts`; and :class:`StartsFromPrior` on the options.
The first line of the class docstring is the generator's description in listings.

Adding a generator is one folder ``generators/NAME/`` + one line in the registry
(:mod:`clipgen.generators.registry`) + one ``weights/entries`` module if it has weights + one preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Hashable, Protocol, TypeVar, runtime_checkable

import torch
from torch import nn

from clipgen.config.typed import NoOptions


M = TypeVar("M", bound=nn.Module)


class FrozenModels:
    """Frozen networks (decoders) kept loaded from run to run, as a batch worker keeps
    them; a generator asks for its own through :meth:`GeneratorContext.frozen_model`."""

    def __init__(self) -> None:
        self._models: dict[Hashable, nn.Module] = {}

    def get(self, key: Hashable, load: Callable[[], M]) -> M:
        if key not in self._models:
            self._models[key] = load()
        return self._models[key]  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._models)


@dataclass(frozen=True)
class GeneratorContext:
    """What a generator may need to know about the run beyond its own options."""

    device: torch.device
    offline: bool = False
    steps: int = 0  # the run's total optimisation steps, for generators with schedules
    # Precision for frozen networks (decoders); the optimised parameters stay fp32.
    dtype: torch.dtype = torch.float32
    kept: FrozenModels | None = None  # networks loaded by earlier runs of this process, to reuse

    def frozen_model(self, key: tuple, load: Callable[[], M]) -> M:
        """The frozen network ``load()`` makes, loaded once per ``key`` (which must name
        everything ``load`` depends on: files, device, dtype) when runs share a cache.
        Whatever a run may change on it (e.g. checkpointing) is set after, every run."""
        if self.kept is None:
            return load()
        return self.kept.get((*key, str(self.device), self.dtype), load)


class Generator(nn.Module):
    """The base class; see the module docstring for the contract."""

    #: Adam learning rate used when neither preset nor flags give one.
    default_lr: ClassVar[float] = 0.05
    #: The dataclass of this generator's options (section ``[<name>]`` in presets).
    Options: ClassVar[type] = NoOptions
    #: Live full-image-sized fp32 copies during a step, for the up-front memory estimate.
    memory_factor: ClassVar[float] = 24.0

    def __init__(self, size: tuple[int, int], options, context: GeneratorContext | None):
        super().__init__()
        self.width, self.height = size
        self.options = options

    def forward(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError("abstract")

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def after_step(self, step: int) -> None:
        """Keep the parameters valid and place schedules at ``step`` finished optimiser steps."""


@runtime_checkable
class EncodesImages(Protocol):
    """A generator that can set its parameters so that forward() reproduces an image."""

    def init_from_image(self, image: torch.Tensor) -> None:
        """``image``: ``(1, 3, H, W)`` in ``[0, 1]``, already at the generator's size."""


@runtime_checkable
class RandomStarts(Protocol):
    """A generator that can draw a fresh random start in place (``--init-search``)."""

    def random_start(self) -> None:
        """Redraw the optimised parameters from torch's global RNG, from the same kind of
        distribution ``__init__`` starts from."""


@runtime_checkable
class TokenGrid(Protocol):
    """A generator made of discrete tokens that a prior can write (VQGAN)."""

    def init_from_tokens(self, tokens: torch.Tensor) -> None:
        """``tokens``: ``(h, w)`` code indices of the generator's grid."""

    def decode_tokens(self, tokens: torch.Tensor, batch: int = 16) -> torch.Tensor:
        """``(n, h, w)`` -> images ``(n, 3, H, W)`` in ``[0, 1]``, without gradients."""


@runtime_checkable
class StartsFromPrior(Protocol):
    """Generator *options* that can ask for prior samples as the start."""

    def prior_start(self):
        """A :class:`clipgen.priors.base.PriorStart`, or None for the generator's own start."""


@runtime_checkable
class Regularized(Protocol):
    """A generator with its own loss term (e.g. keeping latents in-distribution)."""

    def regularization_loss(self) -> torch.Tensor:
        """A scalar added to the CLIP loss every step."""


@runtime_checkable
class VectorGraphic(Protocol):
    """A generator whose current state can be written as an SVG document."""

    def to_svg(self) -> str: ...
