"""Scores: how well images match prompts (the run's reported similarity, candidate ranking,
``clipgen score``) and zero-shot classification."""

from __future__ import annotations

import torch

from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.losses import cosine_similarity
from clipgen.guidance.objective import Targets
from clipgen.guidance.perceptor import Perceptor
from clipgen.inputs import pil_to_tensor


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


def weighted_prompt_score(sims: torch.Tensor, prompts) -> torch.Tensor:
    """``(N, P)`` similarities to each positive prompt part -> ``(N,)``, weighted by the parts' weights."""
    weights = torch.tensor([p.weight for p in prompts], dtype=sims.dtype)
    return (sims * weights).sum(dim=1) / weights.sum()


@torch.no_grad()
def augmented_similarities(model, images: torch.Tensor, texts: list[str], cutouts) -> torch.Tensor:
    """``(N, len(texts))``: each ``(N, 3, H, W)`` image's cosine similarity to each text,
    averaged over ``cutouts.cutn`` augmented views — how well an image holds up beyond
    the views an optimiser could have fooled. ``cutouts`` must produce ``model``'s size."""
    text = model.encode_text(texts)
    rows = []
    for image in images:
        views = cutouts(image[None])[model.input_size]
        rows.append((model.encode_image(views) @ text.T).mean(dim=0).cpu())
    return torch.stack(rows)


#: What ``clipgen score --augment`` views through: the default run's augmentations.
SCORE_AUGMENT = ("affine", "perspective", "jitter", "noise")


@torch.no_grad()
def augmented_similarity_matrix(perceptor: Perceptor, images: list, texts: list[str], views: int,
                                augment: tuple[str, ...] = SCORE_AUGMENT, seed: int = 0,
                                cut_pow: float = 1.0) -> torch.Tensor:
    """:func:`similarity_matrix` over ``views`` augmented views of each image (PIL or
    ``(1, 3, H, W)``), drawn from ``seed`` without moving the caller's random stream."""
    device = perceptor.models[0].mean.device
    batch = [(i if isinstance(i, torch.Tensor) else pil_to_tensor(i)[None]).to(device, torch.float32)
             for i in images]
    total = torch.zeros(len(images), len(texts))
    devices = [device] if device.type == "cuda" else []
    for model in perceptor.models:
        cutouts = Cutouts(views, cut_pow, (model.input_size,), augment).to(device)
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            sims = torch.cat([augmented_similarities(model, image, texts, cutouts) for image in batch])
        total += model.weight * sims
    return total / sum(perceptor.weights)


@torch.no_grad()
def held_out_scores(perceptor: Perceptor, image: torch.Tensor, prompts, views: int, augment: tuple[str, ...],
                    cut_pow: float = 1.0, seed: int = 0) -> dict[str, dict[str, float]]:
    """Scores of one ``(1, 3, H, W)`` image by models that did not guide it, per model:
    ``score`` (the whole image, like the run's own similarity) and, with ``views`` > 0,
    ``augmented`` (the mean over that many augmented views, drawn from ``seed`` without
    moving the caller's random stream)."""
    positive = [p for p in prompts if p.weight > 0]
    texts = [p.text for p in positive]
    out = {}
    for model in perceptor.models:
        whole = model.encode_pil(image) @ model.encode_text(texts).T
        scores = {"score": float(weighted_prompt_score(whole.cpu(), positive)[0])}
        if views:
            sims = augmented_similarity_matrix(Perceptor([model]), [image], texts, views, augment, seed, cut_pow)
            scores["augmented"] = float(weighted_prompt_score(sims, positive)[0])
        out[model.label] = scores
    return out
