"""Cutouts: random crops of the image, resized for each CLIP and augmented, in one batch.

CLIP sees ``cutn`` views per step instead of the whole image; averaging the loss over
random crops and augmentations is what keeps the optimiser from finding adversarial
pixel noise that only one fixed view would accept.
"""

from __future__ import annotations

from typing import Callable

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from clipgen.errors import SettingsError, did_you_mean

# Each entry builds one kornia module; parameters follow what VQGAN-CLIP and pixray use.
AUGMENTATIONS: dict[str, Callable[[], nn.Module]] = {
    "affine": lambda: K.RandomAffine(degrees=15, translate=0.1, shear=5, p=0.7, padding_mode="border"),
    "perspective": lambda: K.RandomPerspective(distortion_scale=0.2, p=0.7),
    "flip": lambda: K.RandomHorizontalFlip(p=0.5),
    "jitter": lambda: K.ColorJitter(brightness=0.1, contrast=0.1, saturation=0.1, hue=0.05, p=0.7),
    "erasing": lambda: K.RandomErasing(scale=(0.1, 0.4), ratio=(0.3, 1 / 0.3), p=0.5),
    "sharpness": lambda: K.RandomSharpness(sharpness=0.3, p=0.5),
    "grayscale": lambda: K.RandomGrayscale(p=0.1),
    "noise": lambda: CutoutNoise(max_std=0.1),
}


class CutoutNoise(nn.Module):
    """Gaussian noise with a per-cutout strength drawn from U(0, max_std)."""

    def __init__(self, max_std: float):
        super().__init__()
        self.max_std = max_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        strength = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype) * self.max_std
        return x + strength * torch.randn_like(x)


def check_augmentations(names: tuple[str, ...]) -> None:
    for name in names:
        if name not in AUGMENTATIONS:
            raise SettingsError(f"unknown augmentation {name!r}; {did_you_mean(name, AUGMENTATIONS)}")


def crop_boxes(cutn: int, cut_pow: float, height: int, width: int, min_size: int,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """``(cutn, 4)`` square boxes ``x1, y1, x2, y2`` in pixels; side ~ min + (max-min) * U^cut_pow."""
    max_size = min(height, width)
    min_size = min(min_size, max_size)
    u = torch.rand(cutn, generator=generator)
    sides = (u.pow(cut_pow) * (max_size - min_size) + min_size).floor().clamp(min=1)
    x1 = (torch.rand(cutn, generator=generator) * (width - sides + 1)).floor()
    y1 = (torch.rand(cutn, generator=generator) * (height - sides + 1)).floor()
    return torch.stack([x1, y1, x1 + sides, y1 + sides], dim=1)


def crop_and_resize(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop ``boxes`` from a ``(1, C, H, W)`` image and resample each to ``size``² in one call.

    roi_align averages several samples per output pixel when a box is larger than
    the output, which acts as an anti-aliasing filter for the downscale.
    """
    rois = torch.cat([torch.zeros(len(boxes), 1), boxes], dim=1)
    if image.device.type == "cuda":
        # Boxes are drawn on the CPU (same crops for a seed on every device); a pinned,
        # non-blocking copy keeps the step free of a host-device sync.
        rois = rois.pin_memory().to(image.device, non_blocking=True)
    rois = rois.to(image.dtype)
    return roi_align(image, rois, output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=-1, aligned=True)


class Cutouts(nn.Module):
    """``forward(image) -> {size: (cutn, 3, size, size)}`` for every CLIP input size."""

    def __init__(self, cutn: int, cut_pow: float, sizes: tuple[int, ...],
                 augment: tuple[str, ...] = ()):
        super().__init__()
        check_augmentations(augment)
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.sizes = tuple(sorted(set(sizes), reverse=True))
        noise = [AUGMENTATIONS[n]() for n in augment if n == "noise"]
        geometric = [AUGMENTATIONS[n]() for n in augment if n != "noise"]
        self.augment = K.AugmentationSequential(*geometric) if geometric else nn.Identity()
        # Noise goes last so it is not smoothed away by the resampling of the geometric ops.
        self.noise = noise[0] if noise else nn.Identity()

    def forward(self, image: torch.Tensor, n: int | None = None) -> dict[int, torch.Tensor]:
        """``n`` cutouts (default ``cutn``): a chunk, when cutouts are batched."""
        largest = self.sizes[0]
        _, _, height, width = image.shape
        boxes = crop_boxes(n or self.cutn, self.cut_pow, height, width, min_size=largest)
        batch = crop_and_resize(image, boxes, largest)
        batch = self.noise(self.augment(batch))
        out = {largest: batch}
        for size in self.sizes[1:]:
            out[size] = F.interpolate(batch, size=(size, size), mode="bilinear",
                                      antialias=True, align_corners=False)
        return out
