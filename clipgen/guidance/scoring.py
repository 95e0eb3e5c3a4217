"""Scores: how well images match prompts (the run's reported similarity, candidate ranking,
``clipgen score``) and zero-shot classification."""

from __future__ import annotations

import torch

from clipgen.guidance.losses import cosine_similarity
from clipgen.guidance.objective import Targets
from clipgen.guidance.perceptor import Perceptor


@torch.no_grad()
def similarity_matrix(perceptor: Perceptor, images: list, texts: list[str]) -> torch.Tensor:
    """``(len(images), len(texts))`` cosine similarities, weighted-averaged over the ensemble."""
    total = torch.zeros(len(images), len(texts))
    for model in perceptor.models:
        sims = model.encode_pil(images) @ model.encode_text(texts).T
        total += model.weight * sims.cpu()
    return total / sum(perceptor.weights)


@torch.no_grad()
def zero_shot_probabilities(perceptor: Perceptor, images: list, labels: list[str]) -> torch.Tensor:
    """``(len(images), len(labels))`` softmax over labels with each CLIP's logit scale, ensemble-averaged."""
    total = torch.zeros(len(images), len(labels))
    for model in perceptor.models:
        scale = model.model.logit_scale.exp().float().cpu()
        sims = (model.encode_pil(images) @ model.encode_text(labels).T).cpu()
        total += model.weight * (scale * sims).softmax(dim=-1)
    return total / sum(perceptor.weights)


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
