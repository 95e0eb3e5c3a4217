"""Raw RGB pixels through a sigmoid: the simplest possible generator."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.config.typed import option
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.common import search_std


@dataclass(frozen=True)
class PixelOptions:
    init_std: float = option(1.0, help="Std of the random logits at start", min=0.0, max=10.0)


class PixelGenerator(Generator):
    """Raw RGB pixels: per-pixel logits through a sigmoid."""

    Options = PixelOptions

    def __init__(self, size: tuple[int, int], options: PixelOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        self.logits = nn.Parameter(torch.randn(1, 3, self.height, self.width, device=context.device)
                                   * options.init_std)

    @torch.no_grad()
    def random_start(self) -> None:
        """Noise at one of several scales (blocks of 1 to 16 pixels, bilinear) and strengths,
        so that some starts are colour fields rather than the same fine grey noise."""
        block = 2 ** int(torch.randint(0, 5, ()))
        coarse = torch.randn(1, 3, -(-self.height // block), -(-self.width // block)) * search_std(self.options.init_std)
        logits = F.interpolate(coarse, size=(self.height, self.width), mode="bilinear", align_corners=False)
        self.logits.copy_(logits.to(self.logits.device))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        self.logits.copy_(torch.logit(image.clamp(1e-3, 1 - 1e-3)))
