"""Raw RGB pixels through a sigmoid: the simplest possible generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipgen.config.typed import option
from clipgen.generators.base import Generator, GeneratorContext


@dataclass(frozen=True)
class PixelOptions:
    init_std: float = option(1.0, help="Std of the random logits at start", min=0.0, max=10.0)


class PixelGenerator(Generator):
    """Raw RGB pixels: per-pixel logits through a sigmoid."""

    Options = PixelOptions

    def __init__(self, size: tuple[int, int], options: PixelOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        self.logits = nn.Parameter(self._draw(context.device))

    def _draw(self, device) -> torch.Tensor:
        return torch.randn(1, 3, self.height, self.width, device=device) * self.options.init_std

    @torch.no_grad()
    def random_start(self) -> None:
        self.logits.copy_(self._draw(self.logits.device))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        self.logits.copy_(torch.logit(image.clamp(1e-3, 1 - 1e-3)))
