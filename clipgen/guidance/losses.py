"""Loss terms: small pure functions. Embeddings are L2-normalised ``(..., D)`` tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared great-circle distance (times 2) between unit vectors; 0 when equal, monotone in angle."""
    chord = (x - y).norm(dim=-1).clamp(max=2.0)
    return chord.div(2).arcsin().pow(2).mul(2)


def prompt_loss(image_embeds: torch.Tensor, target_embeds: torch.Tensor,
                weights: torch.Tensor, stops: torch.Tensor) -> torch.Tensor:
    """Weighted distance of ``(N, D)`` cutout embeddings to ``(P, D)`` targets, mean over cutouts.

    A negative weight flips the sign so the image is pushed away. Where a prompt's signed
    distance is already below its stop value, its gradient is cut (the value still counts).
    """
    dists = spherical_distance(image_embeds[:, None, :], target_embeds[None, :, :])  # (N, P)
    signed = dists * weights.sign()
    signed = torch.where(signed >= stops, signed, signed.detach())
    return (weights.abs() * signed.mean(dim=0)).sum()


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels of a ``(B, C, H, W)`` image."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


def init_image_loss(image: torch.Tensor, init: torch.Tensor) -> torch.Tensor:
    """Pixel MSE to the init image; keeps the result close to where it started."""
    return F.mse_loss(image, init)


def cosine_similarity(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """``(N, D)`` x ``(P, D)`` unit vectors -> ``(N, P)`` cosine similarities."""
    return image_embeds @ text_embeds.T


def latent_distance(params: list[torch.Tensor], starts: list[torch.Tensor]) -> torch.Tensor:
    """``‖z − z₀‖²`` summed over every tensor of the parameters and their starts."""
    return sum(((p - s) ** 2).sum() for p, s in zip(params, starts))


def linear_decay(weight: float, step: int, steps_to_zero: int) -> float:
    """``weight`` at step 0 falling linearly to 0 at ``steps_to_zero`` (0: constant)."""
    if steps_to_zero <= 0:
        return weight
    return weight * max(0.0, 1.0 - step / steps_to_zero)
