"""Zoom/pan/rotate animations: every frame, transform the current image and re-initialise
the generator from it, so the next frames keep optimising a moving picture."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from clipgen.errors import SettingsError
from clipgen.generators.base import EncodesImages
from clipgen.run.loop import StepState


def affine_frame(image: torch.Tensor, zoom: float, pan: tuple[float, float], rotate: float) -> torch.Tensor:
    """Zoom in by ``zoom`` about the centre, rotate by ``rotate`` degrees, shift by ``pan`` pixels."""
    _, _, height, width = image.shape
    angle = math.radians(rotate)
    cos, sin = math.cos(angle) / zoom, math.sin(angle) / zoom
    # affine_grid works in [-1, 1] coordinates; a pan of p pixels is 2p/size there.
    theta = torch.tensor([[cos, -sin, -2 * pan[0] / width], [sin, cos, -2 * pan[1] / height]],
                         dtype=image.dtype, device=image.device)[None]
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class FrameTransform:
    """A loop callback: after each saved frame, move the picture and restart from it."""

    def __init__(self, generator, optimizer: torch.optim.Optimizer, every: int, zoom: float,
                 pan: tuple[float, float], rotate: float):
        self.generator, self.optimizer, self.every = generator, optimizer, every
        self.zoom, self.pan, self.rotate = zoom, pan, rotate

    def __call__(self, state: StepState) -> None:
        if state.step == 0 or state.step % self.every or state.step >= state.total:
            return
        moved = affine_frame(state.image(), self.zoom, self.pan, self.rotate)
        self.generator.init_from_image(moved.clamp(0, 1))
        # Old moments point in directions that belonged to the old picture.
        self.optimizer.state.clear()


def wants_animation(settings) -> bool:
    return settings.zoom != 1.0 or settings.pan != (0.0, 0.0) or settings.rotate != 0.0


def check_animation(settings, generator_cls) -> None:
    if not wants_animation(settings):
        return
    if not issubclass(generator_cls, EncodesImages):
        raise SettingsError(f"generator {settings.generator!r} cannot re-encode a frame, so --zoom/--pan/"
                            "--rotate need one that can start from an image (pixels, fourier, vqgan, dvae)")
    if settings.save_every == 0:
        raise SettingsError("--zoom/--pan/--rotate move the picture once per frame; set --save-every N (N > 0)")
