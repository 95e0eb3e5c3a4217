"""A rough peak-memory estimate, to refuse impossible sizes before allocating anything."""

from __future__ import annotations

import os

import torch

from clipgen.errors import SettingsError

_BYTES = 4  # fp32
# Live copies of a full-size image during a step (output, autograd intermediates, grads,
# optimiser moments of pixel-sized parameters). Generators with big decoders raise it.
_DEFAULT_IMAGE_FACTOR = 24
# Activation bytes kept for backward per cutout at 224² through a ViT-B-class tower.
_PER_CUTOUT_224 = 40 * 2**20


def estimate_bytes(width: int, height: int, cutn: int, clip_sizes: tuple[int, ...] = (224,),
                   image_factor: float = _DEFAULT_IMAGE_FACTOR, cut_batch: int = 0,
                   dtype: torch.dtype = torch.float32) -> int:
    """Peak bytes of one step. Cutouts go through CLIP ``cut_batch`` at a time (0: all),
    so only one chunk's activations are alive; half-precision halves activations."""
    scale = torch.finfo(dtype).bits / 32
    image = width * height * 3 * _BYTES * image_factor * (0.5 + 0.5 * scale)  # fp32 params/grads stay
    alive = min(cutn, cut_batch) if cut_batch else cutn
    cutouts = sum(alive * _PER_CUTOUT_224 * (size / 224) ** 2 for size in clip_sizes) * scale
    return int(image + cutouts)


def available_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(width: int, height: int, cutn: int, device: torch.device,
               clip_sizes: tuple[int, ...] = (224,), image_factor: float = _DEFAULT_IMAGE_FACTOR,
               cut_batch: int = 0, dtype: torch.dtype = torch.float32) -> int:
    """Raise SettingsError with the estimate when the run would not fit; returns the estimate."""
    need = estimate_bytes(width, height, cutn, clip_sizes, image_factor, cut_batch, dtype)
    have = available_bytes(device)
    if have is not None and need > have:
        raise SettingsError(
            f"size {width}x{height} with {cutn} cutouts needs about {gib(need)} (estimate) but "
            f"{device.type} has {gib(have)} available; use a smaller --size, --cut-batch or --cutn")
    return need
