"""Raw RGB pixels through a sigmoid: the simplest possible generator.

Two options make it a stronger prior without a network:

- ``cell > 1``: the optimised logits are a coarser grid, one per ``cell × cell`` block,
  upsampled bilinearly (pixray's pixel size). An image that cannot hold detail finer than
  a cell cannot fool CLIP with speckle.
- ``palette = K``: every pixel is a softmax mix of K learnt colours (pixray's limited
  palettes). Free RGB pixels let the optimiser paint each blob its own off-palette colour
  that CLIP half-accepts; with K colours the whole image shares them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.config.typed import option
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.common import search_std

#: How sharply ``init_from_image`` assigns a pixel to its nearest palette colour (per unit
#: of squared RGB distance): sharp enough that a K-colour image comes back to within 1e-3.
_ASSIGN_SHARPNESS = 1000.0
_KMEANS_ROUNDS = 10


@dataclass(frozen=True)
class PixelOptions:
    init_std: float = option(1.0, help="Std of the random logits at start", min=0.0, max=10.0)
    cell: int = option(1, help="Pixels per optimised cell (>1: a coarser grid, upsampled bilinearly)",
                       min=1, max=256)
    palette: int = option(0, help="Draw with this many learnt colours, mixed per pixel (0: free RGB)",
                          min=0, max=64)


class PixelGenerator(Generator):
    """Raw RGB pixels: per-pixel logits through a sigmoid, or a mix of a few learnt colours."""

    Options = PixelOptions

    def __init__(self, size: tuple[int, int], options: PixelOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        self.grid = (-(-self.height // options.cell), -(-self.width // options.cell))
        channels = options.palette or 3
        self.logits = nn.Parameter(torch.randn(1, channels, *self.grid, device=context.device) * options.init_std)
        if options.palette:
            self.colors = nn.Parameter(_random_color_logits(options.palette).to(context.device))

    @torch.no_grad()
    def random_start(self) -> None:
        """Noise at one of several scales (blocks of 1 to 16 pixels, bilinear) and strengths,
        so that some starts are colour fields rather than the same fine grey noise; new
        palette colours."""
        block = 2 ** int(torch.randint(0, 5, ()))
        rows, cols = self.grid
        coarse = torch.randn(1, self.logits.shape[1], -(-rows // block), -(-cols // block))
        logits = F.interpolate(coarse * search_std(self.options.init_std), size=self.grid, mode="bilinear",
                               align_corners=False)
        self.logits.copy_(logits.to(self.logits.device))
        if self.options.palette:
            self.colors.copy_(_random_color_logits(self.options.palette))

    def forward(self) -> torch.Tensor:
        logits = self.logits
        if self.grid != (self.height, self.width):
            logits = F.interpolate(logits, size=(self.height, self.width), mode="bilinear", align_corners=False)
        if not self.options.palette:
            return torch.sigmoid(logits)
        return torch.einsum("bkhw,kc->bchw", logits.softmax(dim=1), torch.sigmoid(self.colors))

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        if self.grid != (self.height, self.width):
            image = F.interpolate(image, size=self.grid, mode="area")
        image = image.clamp(1e-3, 1 - 1e-3)
        if not self.options.palette:
            self.logits.copy_(torch.logit(image))
            return
        pixels = image[0].flatten(1).T  # (pixels, 3)
        colors = _kmeans(pixels, self.options.palette)
        distance = torch.cdist(pixels, colors).square()  # (pixels, K)
        logits = (-_ASSIGN_SHARPNESS * distance).T.reshape(1, -1, *self.grid)
        self.logits.copy_(logits)
        self.colors.copy_(torch.logit(colors.clamp(1e-3, 1 - 1e-3)))


def _random_color_logits(k: int) -> torch.Tensor:
    """``(k, 3)`` logits of colours uniform in [0.1, 0.9]: clear of the sigmoid's flat ends."""
    return torch.logit(torch.rand(k, 3) * 0.8 + 0.1)


def _kmeans(pixels: torch.Tensor, k: int) -> torch.Tensor:
    """``(k, 3)`` colour centres of ``(n, 3)`` pixels: Lloyd's rounds from the pixels at
    evenly spaced ranks of brightness (deterministic, and spread over the image's range)."""
    order = pixels.sum(dim=1).argsort()
    centres = pixels[order[torch.linspace(0, len(pixels) - 1, k).round().long()]].clone()
    for _ in range(_KMEANS_ROUNDS):
        nearest = torch.cdist(pixels, centres).argmin(dim=1)
        for j in range(k):
            members = pixels[nearest == j]
            if len(members):
                centres[j] = members.mean(dim=0)
    return centres
