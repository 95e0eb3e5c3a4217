"""Train the toy VQGAN (``clipgen toy train-vqgan``): taming's own Encoder/Decoder and
quantiser, saved as the real models are (a ``model.yaml`` and a Lightning-layout
``last.ckpt``), so the VQGAN generator loads it with its normal loader.

Choices that matter for a guidance prior (learned from a prototype that gave blurry
blobs): 64 base channels, because taming's GroupNorm has 32 groups and at 32 channels
it normalises every channel on its own, which wipes out flat colours; a 16×16 token grid
(downsampling 4) so a token is smaller than a shape's features; an edge-weighted
reconstruction loss, because shape lives in the edges and a plain L2 loss is content
with blurring them; dead-code restarts, so the codebook does not collapse to a few
background colours. For speed on a CPU: 128 channels only at the 16×16 level (ch_mult
1, 1, 2), and training on 32×32 crops, which a convolutional model generalises from.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from clipgen.atomic import atomic_path, write_text
from clipgen.errors import SettingsError
from clipgen.generators.vqgan.taming import TamingVQGAN, VQGANConfig, nearest_codes
from clipgen.hardware import cpu_has_fast_bf16
from clipgen.toy import world
from clipgen.toy.judge import accuracy

DDCONFIG = {
    "double_z": False, "z_channels": 64, "resolution": 64, "in_channels": 3, "out_ch": 3, "ch": 64,
    "ch_mult": [1, 1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
}
EMBED_DIM = 64
N_EMBED = 512
# Coarser grids add a 128-channel level per halving: downsampling 8 is 8×8 tokens at 64 px,
# a quarter of the sequence a prior has to write.
CH_MULT = {4: [1, 1, 2], 8: [1, 1, 2, 2], 16: [1, 1, 2, 2, 2]}
HELD_OUT_SEED = 20_000_000


@dataclass(frozen=True)
class VQTrainConfig:
    steps: int = 1500
    batch_size: int = 32
    crop: int = 32  # train on random crops: the model is convolutional, and 4x cheaper per sample
    lr: float = 1e-3
    warmup: int = 100
    beta: float = 0.25
    edge_weight: float = 1.0
    pool_images: int = 12_000
    restart_every: int = 100
    seed: int = 0
    threads: int = 2
    bf16: bool | None = None  # autocast convs to bf16; None: where the CPU has bf16 units (AMX)
    max_seconds: float | None = None
    eval_images: int = 300
    downsample: int = 4  # pixels per token side: 4 is the shipped 16×16 grid
    codes: int = N_EMBED

    def __post_init__(self):
        if self.downsample not in CH_MULT:
            raise SettingsError(f"--downsample {self.downsample} is not one of "
                                f"{', '.join(map(str, sorted(CH_MULT)))}; pick one of those")
        if self.crop % self.downsample:
            raise SettingsError(f"crop {self.crop} is not a multiple of the downsampling {self.downsample}")

    @property
    def ddconfig(self) -> dict:
        return {**DDCONFIG, "ch_mult": list(CH_MULT[self.downsample])}


def yaml_config(config: VQTrainConfig = VQTrainConfig()) -> dict:
    """The taming-format config, as the real ``model.yaml`` files lay it out."""
    return {"model": {
        "base_learning_rate": 4.5e-06,
        "target": "taming.models.vqgan.VQModel",
        "params": {"embed_dim": EMBED_DIM, "n_embed": config.codes, "ddconfig": config.ddconfig,
                   "lossconfig": {"target": "taming.modules.losses.vqperceptual.DummyLoss"}},
    }}


def build_model(config: VQTrainConfig = VQTrainConfig()):
    return TamingVQGAN(VQGANConfig(kind="vq", embed_dim=EMBED_DIM, n_embed=config.codes, ddconfig=config.ddconfig))


def render_pool(n: int, seed: int) -> torch.Tensor:
    """``(n, 3, 64, 64)`` uint8 world images."""
    images, _, _ = world.batch(seed, n)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def edges(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, edge_weight: float) -> torch.Tensor:
    loss = (recon - target).abs().mean() + F.mse_loss(recon, target)
    if edge_weight:
        for r, t in zip(edges(recon), edges(target)):
            loss = loss + edge_weight * (r - t).abs().mean()
    return loss


def random_crops(images: torch.Tensor, size: int, rng: random.Random, grid: int = 4) -> torch.Tensor:
    """A ``size``² crop of each image, at offsets on the token grid (multiples of ``grid``)."""
    full = images.shape[-1]
    if size >= full:
        return images
    offsets = [(grid * rng.randrange((full - size) // grid + 1), grid * rng.randrange((full - size) // grid + 1))
               for _ in range(len(images))]
    return torch.stack([image[:, y:y + size, x:x + size] for image, (x, y) in zip(images, offsets)])


def warmup_cosine(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``peak``, then a cosine down to 5% of it at ``total`` (and flat after)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_at(step: int, config: VQTrainConfig) -> float:
    return warmup_cosine(step, config.lr, config.warmup, config.steps)


def encode(model, x: torch.Tensor) -> torch.Tensor:
    return model.quant_conv(model.encoder(x))


def train(config: VQTrainConfig, out_dir: Path | None = None,
          on_step: Callable[[int, float], None] | None = None) -> dict:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    pool = render_pool(config.pool_images, config.seed * 1_000_003)
    render_seconds = time.perf_counter() - started

    use_bf16 = cpu_has_fast_bf16() if config.bf16 is None else config.bf16
    # channels-last only pays with bf16 kernels; on AVX2 fp32 it was slower.
    memory_format = torch.channels_last if use_bf16 else torch.contiguous_format
    model = build_model(config).train().to(memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.5, 0.9))
    usage = torch.zeros(config.codes)
    steps_done = 0
    for step in range(config.steps):
        if config.max_seconds is not None and time.perf_counter() - started > config.max_seconds:
            break
        index = torch.tensor([rng.randrange(len(pool)) for _ in range(config.batch_size)])
        x = random_crops(pool[index], config.crop, rng, config.downsample).float().div(127.5).sub(1)
        x = x.contiguous(memory_format=memory_format)
        if rng.random() < 0.5:
            x = x.flip(-1)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            h = encode(model, x)
        z_q, q_loss, (_, _, indices) = model.quantize(h.float())
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            recon = model.decoder(model.post_quant_conv(z_q))
        loss = reconstruction_loss(recon.float(), x, config.edge_weight) + q_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        usage += torch.bincount(indices.flatten(), minlength=config.codes).float()
        steps_done = step + 1
        if config.restart_every and steps_done % config.restart_every == 0:
            restart_dead_codes(model, usage, h.detach().float(), rng)
            usage.zero_()
        if on_step is not None:
            on_step(steps_done, float(loss.detach()))
    seconds = time.perf_counter() - started
    model.eval()
    metrics = {"steps": steps_done, "batch_size": config.batch_size, "train_seconds": round(seconds, 1),
               "render_seconds": round(render_seconds, 1), "psnr_db": round(psnr(model, config.eval_images), 2),
               "config": asdict(config)}
    if out_dir is not None:
        save(model, Path(out_dir), metrics, config)
    return metrics


@torch.no_grad()
def restart_dead_codes(model, usage: torch.Tensor, latents: torch.Tensor, rng: random.Random) -> int:
    """Move codes nobody used since the last restart onto random current encoder outputs."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = latents.movedim(1, -1).reshape(-1, latents.shape[1])
    picks = torch.tensor([rng.randrange(len(flat)) for _ in range(len(dead))])
    model.quantize.embedding.weight[dead] = flat[picks] + 0.01 * torch.randn(len(dead), flat.shape[1])
    return len(dead)


@torch.no_grad()
def image_codes(model, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 64, 64)`` in [0, 1] -> the nearest codes ``(N, h, w)``."""
    return nearest_codes(encode(model, images * 2 - 1), model.codebook)


@torch.no_grad()
def decode_codes(model, codes: torch.Tensor) -> torch.Tensor:
    """``(N, h, w)`` codes -> images ``(N, 3, 64, 64)`` in [0, 1]."""
    z_q = F.embedding(codes, model.codebook).movedim(-1, 1)
    return model.decoder(model.post_quant_conv(z_q)).add(1).div(2).clamp(0, 1)


def reconstruct(model, images: torch.Tensor) -> torch.Tensor:
    """``(N, 3, 64, 64)`` in [0, 1] through encoder, codebook and decoder, in [0, 1]."""
    return decode_codes(model, image_codes(model, images))


def held_out(n: int) -> tuple[torch.Tensor, list]:
    images, _, labels = world.batch(HELD_OUT_SEED, n)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, labels


@torch.no_grad()
def psnr(model, n: int) -> float:
    images, _ = held_out(n)
    recon = torch.cat([reconstruct(model, chunk) for chunk in images.split(64)])
    mse = F.mse_loss(recon, images).item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def save(model, out_dir: Path, metrics: dict | None = None, config: VQTrainConfig = VQTrainConfig()) -> Path:
    """``model.yaml`` + ``last.ckpt`` laid out like taming's Lightning checkpoints (fp16 tensors)."""
    import yaml


    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    checkpoint = {"epoch": 0, "global_step": int((metrics or {}).get("steps", 0)),
                  "pytorch-lightning_version": "1.0.8", "state_dict": state}
    with atomic_path(out_dir / "last.ckpt") as tmp:
        torch.save(checkpoint, tmp)
    write_text(out_dir / "model.yaml", yaml.safe_dump(yaml_config(config), sort_keys=False))
    if metrics is not None:
        write_text(out_dir / "training.json", json.dumps(metrics, indent=2))
    return out_dir


def judge_shape_accuracy(model, judge, n: int = 300) -> dict[str, float]:
    """How often the judge reads the true attributes in reconstructions of held-out images."""
    images, labels = held_out(n)
    recon = torch.cat([reconstruct(model, chunk) for chunk in images.split(64)])
    return accuracy(judge, recon, labels, heads=("shape", "colour", "background"))


