"""Best-of-N starts (FuseDream, CLIPasso): draw N random starts of the generator, score each
with CLIP over augmented views — the same cutouts the run will optimise through — and
start from the best — or, with ``mix`` K > 1, from FuseDream's softmax-weighted mix of the
best K: every optimised parameter is the weighted mean of its value in those starts, with
weights ``softmax(-(loss - best) / spread)``, ``spread`` being the K losses' standard
deviation, so the weighting does not depend on the loss's scale.

Start ``i`` is drawn after seeding torch with :func:`start_seed` ``(seed, i)``, so the
search is a pure function of the run's seed, and the run's own random stream is left
exactly where it was (the search runs inside ``fork_rng``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clipgen.generators.base import Generator, RandomStarts
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
                 count: int, views: int, seed: int, mix: int = 0) -> StartSearch:
    """Leave ``generator`` at the best of ``count`` random starts (or at the weighted mix of
    the best ``mix``, when ``mix`` > 1); returns every start's score."""
    if not isinstance(generator, RandomStarts):
        raise TypeError(f"{type(generator).__name__} cannot draw random starts")
    device = next(iter(targets)).embeds.device
    devices = [device] if device.type == "cuda" else []
    losses: list[float] = []
    with torch.random.fork_rng(devices=devices):
        for first in range(0, count, CHUNK):
            images = []
            for index in range(first, min(first + CHUNK, count)):
                torch.manual_seed(start_seed(seed, index))
                generator.random_start()
                with torch.no_grad():
                    # A copy: a generator may hand back a view of its own parameters.
                    images.append(generator().detach().clone())
            losses += augmented_losses(perceptor, cutouts, targets, images, views)
        chosen = min(range(count), key=losses.__getitem__)
        mixed = mix_weights(losses, mix) if mix > 1 else []
        _start_from_mix(generator, mixed or [(chosen, 1.0)], seed)
    generator.after_step(0)
    return StartSearch(chosen, tuple(losses), tuple(mixed))


@torch.no_grad()
def _start_from_mix(generator: Generator, mixed: list[tuple[int, float]], seed: int) -> None:
    """Redraw the starts in ``mixed`` and leave the generator at their weighted mean
    (one start of weight 1: that start, exactly)."""
    if len(mixed) == 1:
        torch.manual_seed(start_seed(seed, mixed[0][0]))
        generator.random_start()
        return
    optimised = [p for p in generator.parameters() if p.requires_grad]
    total = [torch.zeros_like(p) for p in optimised]
    for index, weight in mixed:
        torch.manual_seed(start_seed(seed, index))
        generator.random_start()
        for sum_, parameter in zip(total, optimised):
            sum_.add_(parameter, alpha=weight)
    for parameter, value in zip(optimised, total):
        parameter.copy_(value)
