"""The prior contract: a text-conditioned model that writes VQGAN tokens one at a time.

A prior subclasses :class:`Prior` and has:

- declarations: ``grid`` (tokens ``(h, w)`` it writes; :meth:`to_grid` places them if
  it writes in another order than raster), ``vocab_size``
  (codes of its decoder) and, in the registry, the VQGAN model its tokens belong to;
- ``begin(text, batch, guided) -> state``: encode the text once and make the decoding
  state (key/value caches) for ``batch`` rows, plus ``batch`` unconditioned rows when
  ``guided`` (classifier-free guidance needs both);
- ``next_logits(state, previous, position) -> (cond, uncond)``: feed the token written at
  ``position - 1`` (``None`` at position 0, where the prior starts from its own BOS) and
  return float32 logits ``(batch, vocab_size)`` for ``position``; ``uncond`` is None when
  the state is not guided.

Sampling (temperature, top-k, guidance, the random stream, batching) is one function for
every prior, :func:`clipgen.priors.sampling.sample_grids`; a prior only computes logits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass(frozen=True)
class PriorStart:
    """A generator's request to start from prior samples (its options say which and how)."""

    prior: str
    temperature: float = 1.0
    top_k: int = 0
    guidance: float | None = None  # None: the prior's ``default_guidance``


@dataclass(frozen=True)
class PriorContext:
    device: torch.device
    offline: bool = False
    dtype: torch.dtype = torch.float32  # compute precision of the frozen prior


class Prior(nn.Module, ABC):
    """The base class; see the module docstring for the contract."""

    grid: tuple[int, int] = (16, 16)
    vocab_size: int = 16384
    #: Guidance strength the prior was made for (DALL-E Mega's supercondition factor is 16).
    default_guidance: ClassVar[float] = 1.0

    @property
    def positions(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_grid(self, written: torch.Tensor) -> torch.Tensor:
        """Tokens ``(n, positions)`` in the order the prior writes them -> ``(n, h, w)``
        (raster order unless the prior writes in another)."""
        return written.view(-1, *self.grid)

    @abstractmethod
    def begin(self, text: str, batch: int, guided: bool) -> Any:
        """Encode ``text`` once; the decoding state for ``batch`` rows (twice that if ``guided``)."""

    @abstractmethod
    def next_logits(self, state: Any, previous: torch.Tensor | None,
                    position: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(cond, uncond)`` float32 logits ``(batch, vocab_size)`` for ``position``."""
