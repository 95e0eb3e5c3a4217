"""The generator interface: a module whose forward() returns an image.

A generator is an ``nn.Module`` holding the parameters being optimised. ``forward()``
takes no input and returns a ``(1, 3, H, W)`` float tensor in ``[0, 1]`` that is
differentiable w.r.t. those parameters. Everything else is optional:

- ``param_groups(lr)``: optimiser groups (strokes want separate rates for points,
  widths and colours); the default is one group at ``lr``.
- ``constrain_()``: a no-grad projection after each optimiser step (clamp latents,
  stroke widths).
- Capabilities are separate protocols checked with ``isinstance``:
  :class:`EncodesImages` (can start from an init image) and :class:`VectorGraphic`
  (can write itself as SVG).

Each generator declares its own ``Options`` dataclass; the settings resolver
validates the preset/``--set`` section named after the generator against it, so
adding a generator touches nothing but its registry line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch
from torch import nn


@dataclass(frozen=True)
class NoOptions:
    """For generators that have no options of their own."""


@dataclass(frozen=True)
class GeneratorContext:
    """What a generator may need to know about the run beyond its own options."""

    device: torch.device
    offline: bool = False
    steps: int = 0  # the run's total optimisation steps, for generators with schedules
    # Precision for frozen networks (decoders); the optimised parameters stay fp32.
    dtype: torch.dtype = torch.float32


class Generator(nn.Module):
    #: Adam learning rate used when neither preset nor flags give one.
    default_lr: ClassVar[float] = 0.05
    #: The dataclass of this generator's options (section ``[<name>]`` in presets).
    Options: ClassVar[type] = NoOptions
    #: Live full-image-sized fp32 copies during a step, for the up-front memory estimate.
    memory_factor: ClassVar[float] = 24.0

    def __init__(self, size: tuple[int, int], options, context: GeneratorContext):
        super().__init__()
        self.width, self.height = size
        self.options = options

    @classmethod
    def check_size(cls, width: int, height: int, options) -> None:
        """Raise SettingsError if this generator cannot make images of this size."""

    def forward(self) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError("abstract")

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def constrain_(self) -> None:
        """Project parameters back into their valid range after an optimiser step."""


@runtime_checkable
class EncodesImages(Protocol):
    """A generator that can set its parameters so that forward() reproduces an image."""

    def init_from_image(self, image: torch.Tensor) -> None:
        """``image``: ``(1, 3, H, W)`` in ``[0, 1]`` at the generator's size."""


@runtime_checkable
class Regularized(Protocol):
    """A generator with its own loss term (e.g. keeping latents in-distribution)."""

    def regularization_loss(self) -> torch.Tensor:
        """A scalar added to the CLIP loss every step."""


@runtime_checkable
class VectorGraphic(Protocol):
    """A generator whose current state can be written as an SVG document."""

    def to_svg(self) -> str: ...
