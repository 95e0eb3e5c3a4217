"""Augmentations of world images: what guidance does to an image, in miniature.

The toy CLIP trains on them so that it reads images the optimiser makes, not only clean
renders; the judge uses the milder ones so that it reads generated images too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def smooth_noise(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Random low-frequency colour fields in [0, 1], like a generator early in optimisation."""
    coarse = torch.rand(n, 3, 4, 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def random_warp(images: torch.Tensor, generator: torch.Generator, shift: float = 0.08) -> torch.Tensor:
    """Cutout-like zoom, small rotation, shear and shift in one ``grid_sample``.

    Shifts stay small (a few pixels) so that "at the left" still means the left: the
    guidance cutouts that use this model cover most of the image for the same reason.
    """
    n = images.shape[0]
    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator)
    zoom, angle, shear = uniform(0.8, 1.08), uniform(-0.2, 0.2), uniform(-0.08, 0.08)
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def colour_jitter(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mild brightness/contrast/per-channel gain changes: never enough to change a colour's name."""
    n = images.shape[0]
    gain = 1 + 0.06 * (2 * torch.rand(n, 3, 1, 1, generator=generator) - 1)
    bias = 0.05 * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + 0.1 * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    return (mean + (images - mean) * contrast) * gain + bias


def robustify(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Guidance-like corruption of ``(B, 3, H, W)`` images in [0, 1]."""
    n, _, h, w = images.shape
    warp = torch.rand(n, generator=generator) < 0.8
    images = torch.where(warp.view(n, 1, 1, 1), random_warp(images, generator), images)
    images = colour_jitter(images, generator)
    blend = (torch.rand(n, 1, 1, 1, generator=generator) < 0.25).float()
    alpha = torch.rand(n, 1, 1, 1, generator=generator) * 0.35 * blend
    images = images * (1 - alpha) + smooth_noise(n, h, generator) * alpha
    noise_std = torch.rand(n, 1, 1, 1, generator=generator) * 0.08
    return (images + noise_std * torch.randn(images.shape, generator=generator)).clamp(0, 1)
