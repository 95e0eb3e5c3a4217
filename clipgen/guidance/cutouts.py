"""Cutouts: random crops of the image, resized for each CLIP and augmented, in one batch.

CLIP sees ``cutn`` views per step instead of the whole image; averaging the loss over
random crops and augmentations is what keeps the optimiser from finding adversarial
pixel noise that only one fixed view would accept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.errors import SettingsError, did_you_mean
from clipgen.guidance.augmentations import AUGMENTATIONS, augmentation_modules, check_augmentations


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
    """Crop ``boxes`` from a ``(1, C, H, W)`` image and resample each to ``size``² in one go.

    The resampling is torchvision's ``roi_align`` (aligned, adaptive sampling ratio: each
    output pixel averages ``ceil(side / size)``² bilinear samples, which anti-aliases the
    downscale), computed as two matrix products: for an axis-aligned box it is separable,
    ``out = Wy @ image @ Wxᵀ`` with per-box weight matrices (:func:`resample_weights`). Same
    values within float rounding; roi_align's backward is one serial loop on the CPU
    (0.48 s of a 256², 32-cutout step at 2 threads), the products' backward 0.06 s.
    """
    _, channels, height, width = image.shape
    n = len(boxes)
    wy = resample_weights(boxes[:, 1], boxes[:, 3] - boxes[:, 1], size, height, image)
    wx = resample_weights(boxes[:, 0], boxes[:, 2] - boxes[:, 0], size, width, image)
    # (n·size, H) @ (H, C·W): every box's rows at once, then each box's columns.
    rows = (wy.reshape(n * size, height) @ image[0].transpose(0, 1).reshape(height, channels * width))
    out = torch.bmm(rows.view(n, size * channels, width), wx.transpose(1, 2))
    return out.view(n, size, channels, size).transpose(1, 2).contiguous()


def resample_weights(starts: torch.Tensor, sides: torch.Tensor, size: int, length: int,
                     like: torch.Tensor) -> torch.Tensor:
    """``(n, size, length)``: row ``b`` of box ``i`` averages roi_align's bilinear samples of
    output bin ``b`` along one axis (aligned: pixel centres at ``x + 0.5``; samples outside
    ``[-1, length]`` count as zero, those in ``[-1, 0]`` or past the last pixel are clamped).

    ``starts``/``sides`` are CPU tensors (boxes are drawn there); the weights are built on
    ``like``'s device from a pinned, non-blocking copy, so a GPU step does not wait."""
    ratio = torch.ceil(sides / size).clamp(min=1)  # samples per bin, per box
    most = int(ratio.max())  # read on the CPU: no device sync
    params = torch.stack([starts, sides, ratio]).to(torch.float32)
    if like.device.type == "cuda":
        params = params.pin_memory()
    starts, sides, ratio = params.to(like.device, non_blocking=True)
    k = torch.arange(most, device=like.device, dtype=torch.float32)
    bins = torch.arange(size, device=like.device, dtype=torch.float32)
    ratio = ratio[:, None, None]
    at = starts[:, None, None] - 0.5 + (bins[None, :, None] + (k + 0.5) / ratio) * (sides / size)[:, None, None]
    share = ((k < ratio) & (at >= -1.0) & (at <= length)).float() / ratio
    at = at.clamp(min=0)
    low = at.floor().clamp(max=length - 1)
    frac = torch.where(low >= length - 1, torch.zeros_like(at), at - low)
    low = low.long()
    high = (low + 1).clamp(max=length - 1)
    weights = torch.zeros(len(starts), size, length, device=like.device)
    weights.scatter_add_(2, low, (1 - frac) * share)
    weights.scatter_add_(2, high, frac * share)
    return weights.to(like.dtype)


#: Cut kinds of a schedule: the share of each step's cutouts that are the whole image
#: (Disco Diffusion's "overview" cuts, for composition); the rest are random crops
#: ("inner", for detail).
CUT_KINDS = {"overview": 1.0, "mixed": 0.5, "inner": 0.0}
_PHASE = re.compile(r"^\s*([a-z]+)\s*:\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class CutPhase:
    kind: str
    start: float  # fractions of the run, [start, end)
    end: float


def parse_cut_schedule(text: str) -> tuple[CutPhase, ...]:
    """``"overview:0-40%,inner:40-100%"`` -> phases, checked: known kinds, 0 ≤ start < end ≤ 100,
    no overlaps. Steps no phase covers use inner cuts."""
    phases = []
    for part in filter(str.strip, text.split(",")):
        match = _PHASE.match(part)
        if not match:
            raise SettingsError(f"cut schedule {part.strip()!r}: expected KIND:START-END%, e.g. overview:0-40%")
        kind, start, end = match.group(1), float(match.group(2)), float(match.group(3))
        if kind not in CUT_KINDS:
            raise SettingsError(f"cut schedule {part.strip()!r}: unknown kind {kind!r}; {did_you_mean(kind, CUT_KINDS)}")
        if not start < end <= 100:
            raise SettingsError(f"cut schedule {part.strip()!r}: need START < END <= 100")
        phases.append(CutPhase(kind, start / 100, end / 100))
    phases.sort(key=lambda p: p.start)
    for before, after in zip(phases, phases[1:]):
        if after.start < before.end:
            raise SettingsError(f"cut schedule {text!r}: phases {before.kind} and {after.kind} overlap")
    return tuple(phases)


def overview_share(phases: tuple[CutPhase, ...], fraction: float) -> float:
    """The share of whole-image cutouts at ``fraction`` of the run."""
    for phase in phases:
        if phase.start <= fraction < phase.end:
            return CUT_KINDS[phase.kind]
    return 0.0


class Cutouts(nn.Module):
    """``forward(image) -> {size: (cutn, 3, size, size)}`` for every CLIP input size."""

    def __init__(self, cutn: int, cut_pow: float, sizes: tuple[int, ...],
                 augment: tuple[str, ...] = (), resample_dtype: torch.dtype = torch.float32):
        super().__init__()
        # The run's precision: CLIP reads the views in it anyway, and the two products that
        # resample them run at its matrix rate (bf16 on a Zen 5 core: 4x fp32's). The
        # augmentations stay fp32 (grid sampling in bf16 is slower there).
        self.resample_dtype = resample_dtype
        check_augmentations(augment)
        self.cutn = cutn
        self.cut_pow = cut_pow
        self.sizes = tuple(sorted(set(sizes), reverse=True))
        noise = [AUGMENTATIONS[n]() for n in augment if n == "noise"]
        self.augment = nn.Sequential(*augmentation_modules([n for n in augment if n != "noise"]))
        # Noise goes last so it is not smoothed away by the resampling of the geometric ops.
        self.noise = noise[0] if noise else nn.Identity()

    def forward(self, image: torch.Tensor, n: int | None = None, overview: float = 0.0) -> dict[int, torch.Tensor]:
        """``n`` cutouts (default ``cutn``): a chunk, when cutouts are batched; the share
        ``overview`` of them (rounded) is the whole image, augmented like the others."""
        largest = self.sizes[0]
        _, _, height, width = image.shape
        n = n or self.cutn
        whole = round(n * overview)
        boxes = crop_boxes(n - whole, self.cut_pow, height, width, min_size=largest)
        if whole:
            full = torch.tensor([[0.0, 0.0, float(width), float(height)]]).expand(whole, 4)
            boxes = torch.cat([full, boxes])
        batch = crop_and_resize(image.to(self.resample_dtype), boxes, largest).to(image.dtype)
        batch = self.noise(self.augment(batch))
        out = {largest: batch}
        for size in self.sizes[1:]:
            out[size] = F.interpolate(batch, size=(size, size), mode="bilinear",
                                      antialias=True, align_corners=False)
        return out
