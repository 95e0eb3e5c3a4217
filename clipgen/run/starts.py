"""Best-of-N starts (FuseDream, CLIPasso): draw N random starts of the generator, score each
with CLIP over augmented views — the same cutouts the run will optimise through — and
start from the best — or, with ``mix`` K > 1, from FuseDream's softmax-weighted mix of the
best K: every optimised parameter is the weighted mean of its value in those starts, with
weights ``softmax(-(loss - best) / spread)``, ``spread`` being the K losses' standard
deviation, so the weighting does not depend on the loss's scale.

Start ``i`` is drawn after seeding torch with :func:`start_seed` ``(seed, i)``, so the
search is a pure function of the run's seed, and the run's own random stream is left
exactly where it was (the search runs inside ``fork_rng``).

A start is the generator's own random start (``random_start``), or, with ``shapes``, a
:func:`shape_image` — a flat field and one blob of another colour — that the generator
encodes as its start (``init_from_image``): the composition a vector start (one filled
path over a learnt background) has by construction, given to raster generators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import math
from typing import Callable

from clipgen.generators.base import EncodesImages, Generator, RandomStarts
from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.losses import prompt_loss
from clipgen.guidance.objective import Targets
from clipgen.guidance.perceptor import Perceptor

#: Starts rendered and scored per CLIP forward.
CHUNK = 8


@dataclass(frozen=True)
class StartSearch:
    chosen: int  # index of the best start
    losses: tuple[float, ...]  # every start's augmented CLIP loss (lower is better)
    mixed: tuple[tuple[int, float], ...] = ()  # (start, weight) of a mix; empty: the run begins from ``chosen``

    def to_dict(self) -> dict:
        record = {"starts": len(self.losses), "chosen": self.chosen, "chosen_loss": self.losses[self.chosen],
                  "losses": list(self.losses)}
        if self.mixed:
            record["mixed"] = [{"start": i, "weight": w} for i, w in self.mixed]
        return record


def mix_weights(losses: list[float], k: int) -> list[tuple[int, float]]:
    """The ``k`` lowest losses' starts and their softmax weights (summing to 1)."""
    best = sorted(range(len(losses)), key=losses.__getitem__)[:k]
    chosen = torch.tensor([losses[i] for i in best], dtype=torch.float64)
    spread = float(chosen.std()) if len(best) > 1 else 0.0
    if not spread > 0:  # equal losses: an even mix
        weights = torch.full((len(best),), 1 / len(best), dtype=torch.float64)
    else:
        weights = torch.softmax(-chosen / spread, dim=0)  # softmax is shift-free: no need to subtract the best
    return [(i, float(w)) for i, w in zip(best, weights)]


def shape_image(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(1, 3, height, width)`` in [0, 1]: a field of one random colour and a blob of another,
    drawn from torch's RNG. The blob is star-shaped about a centre in the middle half of
    the image, its radius a fraction 0.12–0.3 of the shorter side times ``1 + a·cos(kθ + φ)``
    (k lobes, 0 to 5: a disc, an oval, rounded triangles, squares and stars), with a
    one-pixel soft edge. Colours are uniform in the RGB cube (measured against a prior
    that offers white, black and pure hues more often: no better; README, Quality)."""
    field, blob = torch.rand(2, 3)
    cx, cy = (torch.rand(2) * 0.5 + 0.25).tolist()
    radius = (float(torch.rand(())) * 0.18 + 0.12) * min(height, width)
    lobes = int(torch.randint(0, 6, ()))
    depth = float(torch.rand(())) * 0.4 if lobes else 0.0
    phase = float(torch.rand(())) * 2 * math.pi
    y = torch.arange(height, dtype=torch.float32)[:, None] + 0.5 - cy * height
    x = torch.arange(width, dtype=torch.float32)[None, :] + 0.5 - cx * width
    edge = radius * (1 + depth * torch.cos(lobes * torch.atan2(y, x) + phase))
    inside = torch.sigmoid((edge - torch.sqrt(x * x + y * y)) * 4.0)  # ~1 px from 0.1 to 0.9
    image = field[:, None, None] + (blob - field)[:, None, None] * inside
    return image[None].to(device)


def start_drawer(generator: Generator, shapes: bool, device: torch.device) -> Callable[[], None]:
    """What one draw of the search does to ``generator``: its own random start, or a
    :func:`shape_image` it encodes."""
    if not shapes:
        if not isinstance(generator, RandomStarts):
            raise TypeError(f"{type(generator).__name__} cannot draw random starts")
        return generator.random_start
    if not isinstance(generator, EncodesImages):
        raise TypeError(f"{type(generator).__name__} cannot start from an image")
    return lambda: generator.init_from_image(shape_image(generator.height, generator.width, device))


def start_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index + 1) % 2**63


@torch.no_grad()
def augmented_losses(perceptor: Perceptor, cutouts: Cutouts, targets: list[Targets],
                     images: list[torch.Tensor], views: int) -> list[float]:
    """Each ``(1, 3, H, W)`` image's prompt loss, averaged over ``views`` augmented cutouts;
    all images' views go through each CLIP in one forward."""
    batches = [cutouts(image, views) for image in images]
    total = sum(perceptor.weights)
    losses = torch.zeros(len(images))
    for model, target, weight in zip(perceptor.models, targets, perceptor.weights):
        embeds = model.encode_image(torch.cat([b[model.input_size] for b in batches]))
        for i, chunk in enumerate(embeds.split(views)):
            losses[i] += weight / total * float(prompt_loss(chunk, target.embeds, target.weights, target.stops))
    return losses.tolist()


def search_start(generator: Generator, perceptor: Perceptor, cutouts: Cutouts, targets: list[Targets],
                 count: int, views: int, seed: int, mix: int = 0, shapes: bool = False) -> StartSearch:
    """Leave ``generator`` at the best of ``count`` random starts (or at the weighted mix of
    the best ``mix``, when ``mix`` > 1); returns every start's score."""
    device = next(iter(targets)).embeds.device
    draw = start_drawer(generator, shapes, device)
    devices = [device] if device.type == "cuda" else []
    losses: list[float] = []
    with torch.random.fork_rng(devices=devices):
        for first in range(0, count, CHUNK):
            images = []
            for index in range(first, min(first + CHUNK, count)):
                torch.manual_seed(start_seed(seed, index))
                draw()
                with torch.no_grad():
                    # A copy: a generator may hand back a view of its own parameters.
                    images.append(generator().detach().clone())
            losses += augmented_losses(perceptor, cutouts, targets, images, views)
        chosen = min(range(count), key=losses.__getitem__)
        mixed = mix_weights(losses, mix) if mix > 1 else []
        _start_from_mix(generator, draw, mixed or [(chosen, 1.0)], seed)
    generator.after_step(0)
    return StartSearch(chosen, tuple(losses), tuple(mixed))


@torch.no_grad()
def _start_from_mix(generator: Generator, draw: Callable[[], None], mixed: list[tuple[int, float]],
                    seed: int) -> None:
    """Redraw the starts in ``mixed`` and leave the generator at their weighted mean
    (one start of weight 1: that start, exactly)."""
    if len(mixed) == 1:
        torch.manual_seed(start_seed(seed, mixed[0][0]))
        draw()
        return
    optimised = [p for p in generator.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in optimised]
    for index, weight in mixed:
        torch.manual_seed(start_seed(seed, index))
        draw()
        for sum_, parameter in zip(total, optimised):
            sum_.add_(parameter, alpha=weight)
    for parameter, value in zip(optimised, total):
        parameter.copy_(value)
