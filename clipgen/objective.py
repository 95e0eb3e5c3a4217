"""The optimisation objective: image -> cutouts -> CLIP embeddings -> weighted loss.

Targets (text and image prompts) are encoded once per run, here, not per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from clipgen.cutouts import Cutouts
from clipgen.losses import cosine_similarity, init_image_loss, prompt_loss, total_variation
from clipgen.perceptor import Perceptor
from clipgen.prompts import Prompt


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
                 regularizer: Callable[[], torch.Tensor] | None = None):
        super().__init__()
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
        loss = self.clip_loss(self.cutouts(image))
        if self.tv_weight:
            loss = loss + self.tv_weight * total_variation(image)
        if self.init_weight and self.init_image is not None:
            loss = loss + self.init_weight * init_image_loss(image, self.init_image)
        if self.regularizer is not None:
            loss = loss + self.regularizer()
        return loss


@torch.no_grad()
def prompt_similarity(perceptor: Perceptor, image: torch.Tensor, targets: list[Targets]) -> float:
    """Ensemble-weighted mean cosine similarity of the whole image to the positive targets."""
    total, weight_sum = 0.0, 0.0
    for model, target in zip(perceptor.models, targets):
        positive = target.weights > 0
        sims = cosine_similarity(model.encode_pil(image), target.embeds[positive])[0]
        w = target.weights[positive]
        total += model.weight * float((sims * w).sum() / w.sum())
        weight_sum += model.weight
    return total / weight_sum
