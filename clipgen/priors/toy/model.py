"""The toy prior's network: the caption's words, then the toy VQGAN's 16×16 tokens written
2×2 block by block — one transformer position per block, a small head per token inside it.

Design choices, each from a prototype that failed without it: one position per token in
raster order (256 of them) gave horizontal streaks, not shapes, so the transformer runs
over the 8×8 blocks (64 positions, a quarter of the sequence and of the attention) while
the tokens stay those of the shipped VQGAN (its decoder refines them, unchanged); inside a
block the four tokens are written in turn by a head that sees the ones before, so edges
inside a block agree. Every slot carries the row/column of the block its content came from
*and* of the block it writes, so "below" and "right of" are one learnt step each. Words
are padded to a fixed length and hidden as keys, so the empty text (classifier-free
guidance's unconditioned rows) attends only to the image so far.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

PAD, UNK = 0, 1
BLOCK = 2  # tokens per block side


@dataclass(frozen=True)
class ToyPriorConfig:
    words: tuple[str, ...]  # text vocabulary after <pad>, <unk>
    text_len: int = 16
    grid: tuple[int, int] = (16, 16)  # the VQGAN's tokens
    codes: int = 512
    width: int = 192
    layers: int = 6
    heads: int = 6

    @property
    def blocks(self) -> tuple[int, int]:
        return self.grid[0] // BLOCK, self.grid[1] // BLOCK

    @property
    def slots(self) -> int:
        return self.blocks[0] * self.blocks[1]

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ToyPriorConfig":
        return cls(words=tuple(data["words"]), text_len=int(data["text_len"]), grid=tuple(data["grid"]),
                   codes=int(data["codes"]), width=int(data["width"]), layers=int(data["layers"]),
                   heads=int(data["heads"]))


def tokenize(texts: list[str], config: ToyPriorConfig) -> torch.Tensor:
    """Word ids ``(B, text_len)``: lower-cased words, unknown ones as <unk>, padded with <pad>."""
    index = {word: i + 2 for i, word in enumerate(config.words)}
    rows = []
    for text in texts:
        ids = [index.get(word, UNK) for word in re.findall(r"[a-z]+", text.lower())][: config.text_len]
        rows.append(ids + [PAD] * (config.text_len - len(ids)))
    return torch.tensor(rows, dtype=torch.long)


def to_blocks(grid: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` tokens -> ``(B, H/2 · W/2, 4)``: blocks in raster order, tokens inside in raster order."""
    b, h, w = grid.shape
    return grid.view(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK).permute(0, 1, 3, 2, 4).reshape(b, -1, BLOCK * BLOCK)


def from_blocks(blocks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The inverse of :func:`to_blocks`."""
    b = blocks.shape[0]
    h, w = grid
    return blocks.view(b, h // BLOCK, w // BLOCK, BLOCK, BLOCK).permute(0, 1, 3, 2, 4).reshape(b, h, w)


class Block(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.ln2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cache: "Cache | None" = None, layer: int = 0,
                start: int = 0) -> torch.Tensor:
        """``mask`` (B, 1, T_query, T_key) True where a query may attend; with ``cache``, this
        slice's keys/values are written at ``start`` and every key so far is attended."""
        b, t, c = x.shape
        q, k, v = (part.view(b, t, self.heads, c // self.heads).transpose(1, 2)
                   for part in self.qkv(self.ln1(x)).chunk(3, dim=-1))
        if cache is not None:
            end = start + t
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            k, v = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(attended.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp(self.ln2(x))


@dataclass
class Cache:
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    key_ok: torch.Tensor  # (B, T_total): text keys that are words, and every block slot


class ToyPriorNet(nn.Module):
    def __init__(self, config: ToyPriorConfig):
        super().__init__()
        self.config = config
        w, n = config.width, BLOCK * BLOCK
        rows, cols = config.blocks
        self.word_embed = nn.Embedding(len(config.words) + 2, w)
        self.text_pos = nn.Embedding(config.text_len, w)
        self.code_embed = nn.Embedding(config.codes, w)
        self.inner_embed = nn.Embedding(n, w)  # where in its block a token sits
        self.bos = nn.Parameter(torch.zeros(w))
        self.from_row, self.from_col = nn.Embedding(rows, w), nn.Embedding(cols, w)
        self.to_row, self.to_col = nn.Embedding(rows, w), nn.Embedding(cols, w)
        self.blocks = nn.ModuleList(Block(w, config.heads) for _ in range(config.layers))
        self.ln_f = nn.LayerNorm(w)
        self.inner_query = nn.Embedding(n, w)
        self.inner_mlp = nn.Sequential(nn.Linear(w, w), nn.GELU(approximate="tanh"), nn.Linear(w, w))
        self.inner_ln = nn.LayerNorm(w)
        self.head = nn.Linear(w, config.codes)
        self.apply(_init)

    def _text(self, words: torch.Tensor) -> torch.Tensor:
        return self.word_embed(words) + self.text_pos.weight[: words.shape[1]]

    def _content(self, blocks: torch.Tensor) -> torch.Tensor:
        """``(B, S, 4)`` tokens -> ``(B, S, w)``: the sum of each block's token embeddings."""
        return (self.code_embed(blocks) + self.inner_embed.weight).sum(dim=2)

    def _slots(self, previous: torch.Tensor | None, batch: int, start: int, count: int) -> torch.Tensor:
        """Slot inputs for blocks ``start … start+count-1``: the block before each (BOS for the
        first) and where it came from, plus where the slot writes."""
        cols = self.config.blocks[1]
        slots = torch.arange(start, start + count, device=self.bos.device)
        x = self.to_row(slots // cols) + self.to_col(slots % cols)
        content = self.bos.expand(batch, 1, -1) if start == 0 else None
        if previous is not None:
            came_from = slots[-previous.shape[1]:] - 1
            moved = self._content(previous) + self.from_row(came_from // cols) + self.from_col(came_from % cols)
            content = moved if content is None else torch.cat([content, moved], dim=1)
        return x + content

    def inner_logits(self, hidden: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of the four tokens of a block, each seeing the ones before it in the block.

        ``hidden`` (B, S, w), ``tokens`` (B, S, k) the block's first k tokens (k ≤ 3 when
        sampling, 4 in training, where the last is not used) -> (B, S, k+1 or 4, codes).
        """
        k = min(tokens.shape[2], BLOCK * BLOCK - 1)
        seen = self.code_embed(tokens[:, :, :k]) + self.inner_embed.weight[:k]
        before = torch.cat([torch.zeros_like(hidden[:, :, None]), seen.cumsum(dim=2)], dim=2)
        x = hidden[:, :, None] + before + self.inner_query.weight[: k + 1]
        x = x + self.inner_mlp(x)
        return self.head(self.inner_ln(x))

    def forward(self, words: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(B, slots, 4, codes)`` for token grids ``(B, H, W)``."""
        blocks = to_blocks(grid)
        b, slots = blocks.shape[:2]
        x = torch.cat([self._text(words), self._slots(blocks[:, :-1], b, 0, slots)], dim=1)
        t = x.shape[1]
        key_ok = torch.cat([words != PAD, torch.ones(b, slots, dtype=torch.bool, device=words.device)], dim=1)
        mask = _mask(key_ok, torch.arange(t, device=x.device), t)
        for block in self.blocks:
            x = block(x, mask)
        return self.inner_logits(self.ln_f(x[:, words.shape[1]:]), blocks)

    @torch.no_grad()
    def begin(self, words: torch.Tensor) -> Cache:
        """Run the text once and keep its keys/values; room for every block slot."""
        b, n_text = words.shape
        c = self.config
        shape = (b, c.heads, n_text + c.slots, c.width // c.heads)
        dtype = self.head.weight.dtype
        cache = Cache([torch.zeros(shape, dtype=dtype, device=words.device) for _ in self.blocks],
                      [torch.zeros(shape, dtype=dtype, device=words.device) for _ in self.blocks],
                      torch.cat([words != PAD, torch.ones(b, c.slots, dtype=torch.bool, device=words.device)], dim=1))
        x = self._text(words).to(dtype)
        mask = _mask(cache.key_ok[:, :n_text], torch.arange(n_text, device=words.device), n_text)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i, 0)
        return cache

    @torch.no_grad()
    def slot_hidden(self, cache: Cache, previous: torch.Tensor | None, slot: int) -> torch.Tensor:
        """The hidden state ``(B, 1, w)`` of block ``slot``, given the block before it ``(B, 1, 4)``."""
        n_text = self.config.text_len
        batch = cache.key_ok.shape[0]
        x = self._slots(previous, batch, slot, 1).to(cache.keys[0].dtype)
        at = n_text + slot
        mask = _mask(cache.key_ok[:, : at + 1], torch.tensor([at], device=x.device), at + 1)
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i, at)
        return self.ln_f(x)


def _mask(key_ok: torch.Tensor, query_slots: torch.Tensor, n_keys: int) -> torch.Tensor:
    """(B, 1, Q, K): causal, pads hidden as keys, but every query sees itself (no empty rows)."""
    keys = torch.arange(n_keys, device=key_ok.device)
    causal = keys[None, :] <= query_slots[:, None]
    own = keys[None, :] == query_slots[:, None]
    return ((causal[None] & key_ok[:, None, :]) | own[None])[:, None]


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
