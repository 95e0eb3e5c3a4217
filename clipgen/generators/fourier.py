"""Fourier-spectrum parameterisation with colour decorrelation (Lucid / pixray "fft").

Optimising the image's spectrum, scaled so that all frequencies start with equal
energy after a 1/f^decay falloff, makes gradient steps change large structures first;
colours are optimised in a decorrelated basis so that brightness and hue move
independently. Both make CLIP guidance produce images instead of high-frequency noise.

``max_freq < 0.5`` band-limits the image (the Fourier counterpart of the pixel generator's
``cell``): frequencies above it, in cycles per pixel, are not optimised at all, so CLIP
cannot be fooled with detail finer than ``1 / max_freq`` pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipgen.config.typed import option
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.common import search_std

# Square root of the colour correlation matrix of ImageNet, as measured by Lucid.
_COLOR_CORRELATION_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02],
     [0.27, 0.00, -0.05],
     [0.27, -0.09, 0.03]]
)
_COLOR_DECORRELATE = _COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()


@dataclass(frozen=True)
class FourierOptions:
    decay: float = option(1.0, help="Spectrum falloff power (higher: smoother images)", min=0.0, max=4.0)
    init_std: float = option(0.01, help="Std of the random spectrum at start", min=0.0, max=10.0)
    decorrelate: bool = option(True, help="Optimise colours in a decorrelated basis")
    max_freq: float = option(0.5, min=0.01, max=0.5,
                             help="Highest frequency optimised, cycles per pixel (0.5: all; 0.125: nothing finer than 8 px)")


def frequency_scale(height: int, width: int, decay: float, max_freq: float = 0.5) -> torch.Tensor:
    """``(H, W//2+1)`` per-frequency scale 1 / max(f, 1/max(H,W))^decay, 0 above ``max_freq``
    along either axis (0.5, Nyquist, keeps every frequency)."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    freqs = (fx * fx + fy * fy).sqrt()
    kept = (fy.abs() <= max_freq) & (fx.abs() <= max_freq)  # all of them at 0.5
    return kept / freqs.clamp(min=1.0 / max(height, width)).pow(decay)


def spectrum_to_image(spectrum: torch.Tensor, scale: torch.Tensor, height: int, width: int,
                      color_matrix: torch.Tensor | None) -> torch.Tensor:
    """``(1, 3, H, W//2+1, 2)`` real/imag spectrum -> ``(1, 3, H, W)`` image in [0, 1]."""
    complex_spectrum = torch.view_as_complex(spectrum) * scale
    image = torch.fft.irfft2(complex_spectrum, s=(height, width), norm="ortho") / 4.0
    if color_matrix is not None:
        image = torch.einsum("ij,bjhw->bihw", color_matrix, image)
    return torch.sigmoid(image)


class FourierGenerator(Generator):
    """An image spectrum with 1/f falloff and decorrelated colours: large structures first."""

    Options = FourierOptions

    def __init__(self, size: tuple[int, int], options: FourierOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        shape = (1, 3, self.height, self.width // 2 + 1, 2)
        self.spectrum = nn.Parameter(torch.randn(shape, device=context.device) * options.init_std)
        scale = frequency_scale(self.height, self.width, options.decay, options.max_freq).to(context.device)
        self.register_buffer("scale", scale, persistent=False)
        matrix = _COLOR_DECORRELATE.to(context.device) if options.decorrelate else None
        self.register_buffer("color_matrix", matrix, persistent=False)

    @torch.no_grad()
    def random_start(self) -> None:
        std = search_std(self.options.init_std)
        self.spectrum.copy_(torch.randn(self.spectrum.shape, device=self.spectrum.device) * std)

    def forward(self) -> torch.Tensor:
        return spectrum_to_image(self.spectrum, self.scale, self.height, self.width, self.color_matrix)

    @torch.no_grad()
    def init_from_image(self, image: torch.Tensor) -> None:
        """Invert forward(): logit, undo the colour mix, FFT, unscale. Band-limited, the
        frequencies above ``max_freq`` are dropped: the start is the image, low-passed."""
        logits = torch.logit(image.clamp(1e-3, 1 - 1e-3))
        if self.color_matrix is not None:
            logits = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(self.color_matrix), logits)
        kept = self.scale > 0
        spectrum = torch.fft.rfft2(logits * 4.0, norm="ortho") / torch.where(kept, self.scale, 1.0)
        self.spectrum.copy_(torch.view_as_real(spectrum * kept))
