"""The built-in toy prior, as a :class:`~clipgen.priors.base.Prior`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from clipgen.errors import ModelError
from clipgen.priors.base import Prior, PriorContext
from clipgen.priors.toy.model import BLOCK, Cache, ToyPriorConfig, ToyPriorNet, from_blocks, tokenize
from clipgen.weights import builtin

PRIOR_FILE = "prior.safetensors"
_PER_BLOCK = BLOCK * BLOCK


@dataclass
class ToyState:
    cache: Cache
    batch: int
    guided: bool
    hidden: torch.Tensor | None = None  # the current block's transformer output
    block: list = field(default_factory=list)  # tokens written so far in the current block


class ToyPrior(Prior):
    """Toy-world prior: a 6-layer transformer writing the toy VQGAN's 16×16 tokens, 2×2 at a time."""

    default_guidance = 2.0

    def __init__(self, net: ToyPriorNet):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.grid = net.config.grid
        self.vocab_size = net.config.codes

    @classmethod
    def load(cls, context: PriorContext) -> "ToyPrior":
        folder = builtin.verified_folder(builtin.get("prior", "toy"))
        return cls.from_file(folder / PRIOR_FILE, context)

    @classmethod
    def from_file(cls, path: Path, context: PriorContext) -> "ToyPrior":
        try:
            with safe_open(str(path), "pt") as f:
                config = ToyPriorConfig.from_json(json.loads((f.metadata() or {})["config"]))
            state = load_file(str(path))
        except (OSError, KeyError, ValueError, SafetensorError) as exc:
            raise ModelError(f"the toy prior {path} cannot be read ({exc}); retrain it with "
                             "`clipgen toy train-prior` or reinstall clipgen") from None
        with torch.device("meta"):
            net = ToyPriorNet(config)
        try:
            net.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelError(f"the toy prior {path} does not match its config ({first}); retrain it") from None
        return cls(net.to(context.device, context.dtype))

    def to_grid(self, written: torch.Tensor) -> torch.Tensor:
        return from_blocks(written.view(written.shape[0], -1, _PER_BLOCK), self.grid)

    def begin(self, text: str, batch: int, guided: bool) -> ToyState:
        texts = [text] * batch + ([""] * batch if guided else [])
        words = tokenize(texts, self.net.config).to(self.net.head.weight.device)
        return ToyState(self.net.begin(words), batch, guided)

    def next_logits(self, state: ToyState, previous: torch.Tensor | None, position: int):
        slot, inner = divmod(position, _PER_BLOCK)
        if previous is not None:
            state.block.append(previous.repeat(2) if state.guided else previous)
        if inner == 0:
            finished = torch.stack(state.block, dim=1)[:, None] if state.block else None
            state.hidden = self.net.slot_hidden(state.cache, finished, slot)
            state.block = []
        rows = state.hidden.shape[0]
        so_far = torch.stack(state.block, dim=1)[:, None] if state.block else torch.zeros(
            rows, 1, 0, dtype=torch.long, device=state.hidden.device)
        logits = self.net.inner_logits(state.hidden, so_far)[:, 0, -1].float()
        if state.guided:
            return logits[: state.batch], logits[state.batch:]
        return logits, None
