"""CLIP's own uses: score images against prompts, and zero-shot classification."""

from __future__ import annotations

import torch

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
