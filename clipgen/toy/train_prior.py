"""Train the toy prior (``clipgen toy train-prior``): (caption, toy VQGAN tokens) pairs from the
world, next-token cross-entropy, 10% of captions dropped for classifier-free guidance.

The pool of encoded images grows while training (a few new world images every step) so
the first step comes in seconds and the model sees more distinct images than a fixed pool
encoded up front would allow in the same time; every draw gets a fresh caption phrasing
of its label, so the same image teaches several ways of naming it.

Images are quantised with a rate cost (``code_rate``, see
:func:`~clipgen.generators.vqgan.taming.rate_costs`): the toy VQGAN spreads one flat
background colour over ~150 codes (3.5 nats), and a prior trained on those learns blobs
with specks; with the cost the same images use a fraction of the codes at no loss of what
the judge reads in their decodings.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from clipgen.atomic import atomic_path, write_text
from clipgen.generators.vqgan.quantise import nearest_codes, rate_costs
from clipgen.generators.vqgan.taming import load_weights, read_config
from clipgen.hardware import cpu_has_fast_bf16
from clipgen.priors.toy.model import ToyPriorConfig, ToyPriorNet, to_blocks, tokenize
from clipgen.toy import world
from clipgen.toy.train_vqgan import warmup_cosine

PRIOR_FILE = "prior.safetensors"
HELD_OUT_SEED = 30_000_000


@dataclass(frozen=True)
class PriorTrainConfig:
    vqgan: str  # folder with model.yaml + last.ckpt of the VQGAN whose tokens the prior writes
    steps: int = 6000
    batch_size: int = 32
    lr: float = 1e-3
    warmup: int = 150
    weight_decay: float = 0.01
    text_dropout: float = 0.1
    code_rate: float = 0.3  # weight of -log p(code) added to the quantiser's distance (0: plain nearest codes)
    pool_images: int = 60_000
    initial_pool: int = 2048
    grow_per_step: int = 4
    width: int = 192
    layers: int = 6
    heads: int = 6
    seed: int = 0
    threads: int = 2
    bf16: bool | None = None
    max_seconds: float | None = None
    eval_images: int = 512


def caption_words() -> tuple[str, ...]:
    """Every word the world's captions use, sorted (the prior's text vocabulary)."""
    words = {"a", "an", "on", "background", "at", "the", "in", "center"}
    words |= set(world.COLOURS) | set(world.SHAPES) | set(world.PLURALS.values()) | set(world.SIZES)
    words |= set(world.COUNTS.values())
    for position in world.POSITIONS:
        words |= set(position.split())
    return tuple(sorted(words))


class TokenPool:
    """World images encoded to tokens, with their labels; grows by ``grow`` per call.
    The first call also fixes the quantiser's code costs, from the latents it encodes."""

    def __init__(self, vqgan, seed: int, limit: int, code_rate: float):
        self.vqgan, self.next_seed, self.limit, self.code_rate = vqgan, seed, limit, code_rate
        self.code_cost: torch.Tensor | None = None
        self.tokens: list[torch.Tensor] = []
        self.labels: list[world.Label] = []

    @torch.no_grad()
    def grow(self, n: int) -> None:
        n = min(n, self.limit - len(self.labels))
        latents = []
        for start in range(0, n, 256):
            count = min(256, n - start)
            images, _, labels = world.batch(self.next_seed, count)
            self.next_seed += count
            latents.append(self.vqgan.encode_latents(to_model_input(images)))
            self.labels.extend(labels)
        if not latents:
            return
        latents = torch.cat(latents)
        if self.code_cost is None:
            self.code_cost = rate_costs(latents, self.vqgan.codebook, self.code_rate)
        self.tokens.extend(self.encode(latents))

    def encode(self, latents: torch.Tensor) -> torch.Tensor:
        return nearest_codes(latents, self.vqgan.codebook, self.code_cost)

    def code_statistics(self) -> dict:
        """How many codes the pool uses and the entropy of their frequencies (nats)."""
        counts = torch.bincount(torch.stack(self.tokens).flatten(), minlength=self.vqgan.codebook.shape[0])
        p = counts[counts > 0].double() / counts.sum()
        return {"codes_used": int((counts > 0).sum()), "code_entropy": round(float(-(p * p.log()).sum()), 3)}

    def __len__(self) -> int:
        return len(self.labels)


def to_model_input(images) -> torch.Tensor:
    """``(N, 64, 64, 3)`` uint8 -> ``(N, 3, 64, 64)`` in ``[-1, 1]``."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def train(config: PriorTrainConfig, out_dir: Path | None = None,
          on_step: Callable[[int, float], None] | None = None) -> dict:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    folder = Path(config.vqgan)
    vq_config = read_config(folder / "model.yaml")
    vqgan = load_weights(vq_config, folder / "last.ckpt", torch.device("cpu"))
    grid = (vq_config.ddconfig["resolution"] // vq_config.downsampling,) * 2
    pool = TokenPool(vqgan, config.seed * 1_000_003 + 7, config.pool_images, config.code_rate)
    pool.grow(config.initial_pool)
    encode_seconds = time.perf_counter() - started

    model_config = ToyPriorConfig(words=caption_words(), grid=grid, codes=vq_config.n_embed, width=config.width,
                                  layers=config.layers, heads=config.heads)
    model = ToyPriorNet(model_config).train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n and "_row" not in n
             and "_col" not in n]
    decay_ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in decay_ids]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.95))
    use_bf16 = cpu_has_fast_bf16() if config.bf16 is None else config.bf16
    # The schedule is laid out over the steps that fit the time budget, once that is known.
    total = config.steps
    steps_done, loss_value, losses = 0, float("nan"), []
    for step in range(config.steps):
        elapsed = time.perf_counter() - started
        if config.max_seconds is not None:
            if elapsed > config.max_seconds:
                break
            if step == 50:
                per_step = (elapsed - encode_seconds) / 50
                total = min(config.steps, int((config.max_seconds - encode_seconds) / per_step))
        pool.grow(config.grow_per_step)
        picks = [rng.randrange(len(pool)) for _ in range(config.batch_size)]
        texts = ["" if rng.random() < config.text_dropout else world.caption(pool.labels[i], rng) for i in picks]
        words = tokenize(texts, model_config)
        tokens = torch.stack([pool.tokens[i] for i in picks])
        for group in optimizer.param_groups:
            group["lr"] = warmup_cosine(step, config.lr, config.warmup, total)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(words, tokens)
        loss = F.cross_entropy(logits.float().reshape(-1, model_config.codes), to_blocks(tokens).reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps_done, loss_value = step + 1, float(loss.detach())
        if steps_done % 100 == 0:
            losses.append(round(loss_value, 4))
        if on_step is not None:
            on_step(steps_done, loss_value)
    model.eval()
    metrics = {"steps": steps_done, "batch_size": config.batch_size, "sequences": steps_done * config.batch_size,
               "pool_images": len(pool), "train_seconds": round(time.perf_counter() - started, 1),
               "encode_seconds_initial": round(encode_seconds, 1), "final_loss": round(loss_value, 4),
               "held_out_loss": round(held_out_loss(model, pool, config.eval_images), 4), "loss_every_100": losses,
               **pool.code_statistics(),
               "parameters": sum(p.numel() for p in model.parameters()), "config": asdict(config)}
    if out_dir is not None:
        save(model, Path(out_dir), metrics)
    return metrics


@torch.no_grad()
def held_out_loss(model: ToyPriorNet, pool: TokenPool, n: int = 512) -> float:
    """Next-token loss on world images the pool never drew, quantised as the pool's were."""
    images, captions, _ = world.batch(HELD_OUT_SEED, n)
    tokens = pool.encode(pool.vqgan.encode_latents(to_model_input(images)))
    logits = model(tokenize(captions, model.config), tokens)
    return float(F.cross_entropy(logits.reshape(-1, model.config.codes), to_blocks(tokens).reshape(-1)))


def save(model: ToyPriorNet, out_dir: Path, metrics: dict | None = None) -> Path:
    """``prior.safetensors`` (fp16, the config in its metadata) and ``training.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out_dir / PRIOR_FILE) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(model.config.to_json())})
    if metrics is not None:
        write_text(out_dir / "training.json", json.dumps(metrics, indent=2))
    return out_dir
