"""The optimisation objective: image -> cutouts -> CLIP embeddings -> weighted loss.

Targets (text and image prompts) are encoded once per run, here, not per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
from torch import nn

from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.losses import init_image_loss, prompt_loss, total_variation
from clipgen.guidance.perceptor import Perceptor
from clipgen.guidance.prompts import Prompt


@dataclass(frozen=True)
class Targets:
    """One CLIP model's targets: ``(P, D)`` embeddings, ``(P,)`` weights and stops."""

    embeds: torch.Tensor
    weights: torch.Tensor
    stops: torch.Tensor


@torch.no_grad()
def encode_targets(perceptor: Perceptor, prompts: list[Prompt],
                   image_prompts: list[tuple[object, float]]) -> list[Targets]:
    """Encode text prompts and ``(PIL image, weight)`` image prompts for every model."""
    out = []
    for model in perceptor.models:
        parts, weights, stops = [], [], []
        if prompts:
            parts.append(model.encode_text([p.text for p in prompts]))
            weights += [p.weight for p in prompts]
            stops += [p.stop for p in prompts]
        if image_prompts:
            parts.append(model.encode_pil([image for image, _ in image_prompts]))
            weights += [w for _, w in image_prompts]
            stops += [float("-inf")] * len(image_prompts)
        device = model.mean.device
        out.append(Targets(
            embeds=torch.cat(parts),
            weights=torch.tensor(weights, device=device),
            stops=torch.tensor(stops, device=device),
        ))
    return out


class Objective(nn.Module):
    """``objective(image) -> scalar loss`` for a ``(1, 3, H, W)`` image in [0, 1]."""

    def __init__(self, perceptor: Perceptor, cutouts: Cutouts, targets: list[Targets],
                 tv_weight: float = 0.0, init_weight: float = 0.0,
                 init_image: torch.Tensor | None = None,
                 regularizer: Callable[[], torch.Tensor] | None = None, cut_batch: int = 0):
        super().__init__()
        self.cut_batch = cut_batch
        self.perceptor = perceptor
        self.cutouts = cutouts
        self.targets = targets
        self.tv_weight = tv_weight
        self.init_weight = init_weight
        self.init_image = init_image
        self.regularizer = regularizer
        total = sum(perceptor.weights)
        self.model_weights = [w / total for w in perceptor.weights]

    def set_targets(self, targets: list[Targets]) -> None:
        self.targets = targets

    def clip_loss(self, views: dict[int, torch.Tensor]) -> torch.Tensor:
        """Ensemble-weighted prompt loss of cutouts ``{input size: (N, 3, s, s)}``."""
        loss = next(iter(views.values())).new_zeros(())
        for model, targets, weight in zip(self.perceptor.models, self.targets, self.model_weights):
            embeds = model.encode_image(views[model.input_size])
            loss = loss + weight * prompt_loss(embeds, targets.embeds, targets.weights, targets.stops)
        return loss

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.clip_loss(self.cutouts(image)) + self.image_terms(image)

    def image_terms(self, image: torch.Tensor) -> torch.Tensor:
        """The loss terms that look at the whole image (not through CLIP)."""
        loss = image.new_zeros(())
        if self.tv_weight:
            loss = loss + self.tv_weight * total_variation(image)
        if self.init_weight and self.init_image is not None:
            loss = loss + self.init_weight * init_image_loss(image, self.init_image)
        if self.regularizer is not None:
            loss = loss + self.regularizer()
        return loss

    def chunks(self) -> list[int]:
        cutn = self.cutouts.cutn
        size = self.cut_batch or cutn
        return [min(size, cutn - start) for start in range(0, cutn, size)]

    def loss_and_backward(self, image: torch.Tensor, timer: StageMarks | None = None) -> torch.Tensor:
        """Backpropagate the loss of ``image`` into the generator; returns it (detached).

        Cutouts go through CLIP ``cut_batch`` at a time, each chunk's gradient is
        accumulated on a detached copy of the image and the graph freed, and one final
        backward carries the summed image gradient through the generator. Peak memory is
        then one chunk's CLIP activations whatever ``cutn`` is; the loss is exactly the
        same, because it is a mean over cutouts. ``timer`` is told where each stage ends
        (the bench's :class:`clipgen.bench.timer.StageTimer`); runs pass none.
        """
        timer = timer or _NO_TIMER
        timer.mark("generator")
        leaf = image.detach().requires_grad_(True)
        cutn = self.cutouts.cutn
        total = image.new_zeros((), dtype=torch.float32)
        for n in self.chunks():
            views = self.cutouts(leaf, n)
            timer.mark("cutouts")
            loss = self.clip_loss(views) * (n / cutn)
            timer.mark("clip")
            loss.backward()
            total = total + loss.detach()
            timer.mark("backward")
        terms = self.image_terms(image)
        surrogate = (image * leaf.grad).sum() + terms
        surrogate.backward()
        timer.mark("backward")
        return total + terms.detach()


class StageMarks(Protocol):
    """Told each time a stage of a step ends: generator, cutouts, clip, backward."""

    def mark(self, stage: str) -> None: ...


class _NoTimer:
    def mark(self, stage: str) -> None:
        pass


_NO_TIMER = _NoTimer()
