"""Sampling token grids from any prior: temperature, top-k and classifier-free guidance.

The random stream is a CPU ``torch.Generator`` seeded per call, and tokens are drawn from
CPU probabilities, so a seed gives the same grids on every device (for the same batch size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from clipgen.errors import SettingsError
from clipgen.priors.base import Prior


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # keep the k most likely codes (0: all; 1: greedy)
    guidance: float = 1.0  # 1: the conditional model alone; >1 pushes away from the unconditioned one

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise SettingsError(f"prior temperature must be > 0, not {self.temperature}")
        if self.top_k < 0:
            raise SettingsError(f"prior top_k must be 0 (all codes) or more, not {self.top_k}")
        if self.guidance < 0:
            raise SettingsError(f"prior guidance must be ≥ 0, not {self.guidance}")


def guide(cond: torch.Tensor, uncond: torch.Tensor | None, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + g·(cond − uncond)`` (g = 1: ``cond``)."""
    if uncond is None or guidance == 1.0:
        return cond
    return uncond + guidance * (cond - uncond)


def filtered_probabilities(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """Softmax of ``logits / temperature`` over the ``top_k`` largest per row (0: all)."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        threshold = logits.topk(top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < threshold, float("-inf"))
    return torch.softmax(logits, dim=-1)


def draw(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> torch.Tensor:
    """One token per row; ``top_k == 1`` is the argmax (no randomness used)."""
    if sampling.top_k == 1:
        return logits.argmax(dim=-1)
    probabilities = filtered_probabilities(logits.detach().cpu(), sampling.temperature, sampling.top_k)
    return torch.multinomial(probabilities, 1, generator=generator)[:, 0].to(logits.device)


@torch.no_grad()
def sample_grids(prior: Prior, text: str, n: int, seed: int, sampling: Sampling = Sampling(),
                 batch_size: int = 16, on_token: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """``n`` token grids ``(n, h, w)`` (CPU, int64) for ``text``, in batches of ``batch_size``.

    ``on_token(done, total)`` is called after every token position of every batch.
    """
    generator = torch.Generator().manual_seed(seed)
    guided = sampling.guidance != 1.0
    grids = []
    total = prior.positions * -(-n // batch_size)
    done = 0
    for start in range(0, n, batch_size):
        batch = min(batch_size, n - start)
        state = prior.begin(text, batch, guided)
        previous = None
        tokens = []
        for position in range(prior.positions):
            cond, uncond = prior.next_logits(state, previous, position)
            previous = draw(guide(cond, uncond, sampling.guidance), sampling, generator)
            tokens.append(previous.cpu())
            done += 1
            if on_token is not None:
                on_token(done, total)
        grids.append(prior.to_grid(torch.stack(tokens, dim=1)))
    return torch.cat(grids)
