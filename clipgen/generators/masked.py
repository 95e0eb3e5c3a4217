"""Masked edits: a wrapper that lets a generator change only the masked part of an image.

``image = mask * inner() + (1 - mask) * init``: outside the mask the init image is
composited back exactly, so CLIP guidance (and every saved frame) only ever changes the
region the mask marks (white = editable).
"""

from __future__ import annotations

import torch

from clipgen.generators.base import Generator


class MaskedGenerator(Generator):
    def __init__(self, inner: Generator, init: torch.Tensor, mask: torch.Tensor):
        torch.nn.Module.__init__(self)
        self.width, self.height, self.options = inner.width, inner.height, inner.options
        self.inner = inner
        self.register_buffer("init", init, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self) -> torch.Tensor:
        return self.mask * self.inner() + (1 - self.mask) * self.init

    def param_groups(self, lr: float) -> list[dict]:
        return self.inner.param_groups(lr)

    def constrain_(self) -> None:
        self.inner.constrain_()

    def init_from_image(self, image: torch.Tensor) -> None:
        self.inner.init_from_image(image)


def load_mask(path: str, size: tuple[int, int]) -> torch.Tensor:
    """A ``(1, 1, H, W)`` mask in [0, 1] from an image file: white = editable, black = kept."""
    from PIL import Image

    from clipgen.inputs import load_image

    image = load_image(path, "mask").convert("L").resize(size, Image.BILINEAR)
    return torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).float().div(255).view(
        1, 1, size[1], size[0])
