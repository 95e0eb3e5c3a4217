"""Masked edits: a wrapper that lets a generator change only the masked part of an image.

``image = mask * inner() + (1 - mask) * init``: outside the mask the init image is
composited back exactly, so CLIP guidance (and every saved frame) only ever changes the
region the mask marks (white = editable).

The wrapper has exactly the capabilities of the generator it wraps (:func:`mask_generator`
builds its class from one forwarding mixin per capability), so a masked CLIPDraw still
writes its SVG (the strokes alone, without the kept part of the init image) and a masked
BigGAN still adds its regulariser, while a masked pixel image is no vector graphic. The
class also carries the inner class's declarations (``default_lr``, ``memory_factor``,
``Options``), so code that reads them from ``type(generator)`` sees the same values.
"""

from __future__ import annotations

import functools

import torch

from clipgen.generators.base import EncodesImages, Generator, RandomStarts, Regularized, VectorGraphic


class MaskedGenerator(Generator):
    """The inner generator's image inside the mask, the init image outside it."""

    def __init__(self, inner: Generator, init: torch.Tensor, mask: torch.Tensor):
        super().__init__((inner.width, inner.height), inner.options, None)
        self.inner = inner
        self.register_buffer("init", init, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    def forward(self) -> torch.Tensor:
        return self.mask * self.inner() + (1 - self.mask) * self.init

    def param_groups(self, lr: float) -> list[dict]:
        return self.inner.param_groups(lr)

    def after_step(self, step: int) -> None:
        self.inner.after_step(step)


class _ForwardsInitFromImage:
    def init_from_image(self, image: torch.Tensor) -> None:
        self.inner.init_from_image(image)


class _ForwardsRegularizationLoss:
    def regularization_loss(self) -> torch.Tensor:
        return self.inner.regularization_loss()


class _ForwardsToSvg:
    def to_svg(self) -> str:
        return self.inner.to_svg()


class _ForwardsRandomStart:
    def random_start(self) -> None:
        self.inner.random_start()


#: Each capability protocol and the mixin that forwards it to the inner generator.
_FORWARDERS = ((EncodesImages, _ForwardsInitFromImage), (Regularized, _ForwardsRegularizationLoss),
               (VectorGraphic, _ForwardsToSvg), (RandomStarts, _ForwardsRandomStart))


@functools.cache
def _masked_class(inner_cls: type[Generator], mixins: tuple[type, ...]) -> type[MaskedGenerator]:
    declarations = {"default_lr": inner_cls.default_lr, "memory_factor": inner_cls.memory_factor,
                    "Options": inner_cls.Options, "__module__": __name__, "__doc__": MaskedGenerator.__doc__}
    return type(f"Masked{inner_cls.__name__}", (*mixins, MaskedGenerator), declarations)


def mask_generator(inner: Generator, init: torch.Tensor, mask: torch.Tensor) -> MaskedGenerator:
    """``inner`` restricted to ``mask`` (``(1, 1, H, W)``, 1 = editable) over ``init`` (``(1, 3, H, W)``)."""
    mixins = tuple(mixin for protocol, mixin in _FORWARDERS if isinstance(inner, protocol))
    return _masked_class(type(inner), mixins)(inner, init, mask)
