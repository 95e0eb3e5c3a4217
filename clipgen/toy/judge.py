"""The judge: a small supervised CNN that reads a world image's attributes.

It is trained on the world's structured labels and is independent of CLIP, so it can
tell whether a generated image *means* its prompt. It is used by tests and by
``clipgen toy judge``; it is never used to pick images during generation.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from clipgen.atomic import atomic_path, write_text
from clipgen.hardware import cpu_has_fast_bf16
from clipgen.toy import world
from clipgen.toy.augment import colour_jitter, random_warp
from clipgen.toy.train_clip import HELD_OUT_SEED
from clipgen.weights import builtin

NO_POSITION = "scattered"
HEADS: dict[str, list] = {
    "colour": list(world.COLOURS),
    "shape": list(world.SHAPES),
    "background": list(world.COLOURS),
    "position": list(world.POSITIONS) + [NO_POSITION],
    "count": [1, 2, 3],
    "size": list(world.SIZES),
}


def _block(c_in: int, c_out: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2))


class Judge(nn.Module):
    """``(B, 3, 64, 64)`` in [0, 1] -> logits per attribute head."""

    def __init__(self, width: int = 24):
        super().__init__()
        # One conv at full resolution (colours need no depth there), two further down where
        # shapes are told apart: about 0.15 GFLOP per image, so it trains in minutes on a CPU.
        self.features = nn.Sequential(_block(3, width, convs=1), _block(width, width * 2),
                                      _block(width * 2, width * 4), _block(width * 4, width * 4, convs=1))
        # Position needs where things are: keep the 4×4 map instead of pooling it away.
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(width * 4 * 16, 256), nn.ReLU(inplace=True))
        self.heads = nn.ModuleDict({name: nn.Linear(256, len(choices)) for name, choices in HEADS.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.trunk(self.features(images * 2 - 1))
        return {name: head(hidden) for name, head in self.heads.items()}


def label_targets(labels: list[world.Label]) -> dict[str, torch.Tensor]:
    def index(name: str, value) -> int:
        return HEADS[name].index(NO_POSITION if value is None and name == "position" else value)

    return {name: torch.tensor([index(name, getattr(l, name)) for l in labels]) for name in HEADS}


def to_tensor(images) -> torch.Tensor:
    """PIL images or a ``(N, H, W, 3)`` uint8 array -> ``(N, 3, 64, 64)`` float in [0, 1]."""
    if not isinstance(images, np.ndarray):
        images = np.stack([np.array(i.convert("RGB").resize((world.SIZE, world.SIZE))) for i in images])
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0


@dataclass(frozen=True)
class JudgeConfig:
    steps: int = 1200
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    eval_images: int = 1000
    bf16: bool | None = None  # autocast convs to bf16; None: where the CPU has bf16 units (AMX)


def train_judge(config: JudgeConfig, out_dir: Path | None = None,
                on_step: Callable[[int, float], None] | None = None) -> dict:
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    use_bf16 = cpu_has_fast_bf16() if config.bf16 is None else config.bf16
    memory_format = torch.channels_last if use_bf16 else torch.contiguous_format  # see hardware.convert_frozen
    model = Judge().train().to(memory_format=memory_format)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=config.steps)
    rng = random.Random(config.seed)
    started = time.perf_counter()
    for step in range(config.steps):
        images, _, labels = world.batch(rng.randrange(world_seed_limit()), config.batch_size)
        x = to_tensor(images)
        # Small warps, jitter and noise so the judge also reads images that came out of an
        # optimiser; never enough to change what a label says.
        x = colour_jitter(random_warp(x, generator, shift=0.03), generator)
        x = (x + torch.rand(len(x), 1, 1, 1) * 0.06 * torch.randn_like(x)).clamp(0, 1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(x.contiguous(memory_format=memory_format))
        targets = label_targets(labels)
        loss = sum(F.cross_entropy(logits[name].float(), targets[name]) for name in HEADS)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if on_step is not None:
            on_step(step + 1, float(loss.detach()))
    model.eval()
    metrics = {"train_seconds": round(time.perf_counter() - started, 1),
               "accuracy": evaluate(model, config.eval_images), "config": asdict(config)}
    if out_dir is not None:
        save_judge(model, Path(out_dir), metrics)
    return metrics


def world_seed_limit() -> int:
    return HELD_OUT_SEED - 10_000


@torch.no_grad()
def evaluate(model: Judge, n: int) -> dict[str, float]:
    images, _, labels = world.batch(HELD_OUT_SEED, n)
    return accuracy(model, to_tensor(images), labels)


@torch.no_grad()
def accuracy(model: Judge, images: torch.Tensor, labels: list[world.Label],
             heads: tuple[str, ...] = tuple(HEADS)) -> dict[str, float]:
    """Share of ``images`` (``(N, 3, 64, 64)`` in [0, 1]) whose ``labels`` the judge reads, per head."""
    predictions = model(images)
    targets = label_targets(labels)
    return {name: round(float((predictions[name].argmax(1) == targets[name]).float().mean()), 4)
            for name in heads}


def save_judge(model: Judge, out_dir: Path, metrics: dict | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float16).contiguous() if v.is_floating_point() else v.contiguous()
             for k, v in model.state_dict().items()}
    with atomic_path(out_dir / "judge.safetensors") as tmp:
        save_file(state, str(tmp))
    if metrics is not None:
        write_text(out_dir / "judge.json", json.dumps(metrics, indent=2))
    return out_dir


def load_shipped_judge() -> Judge:
    """The judge shipped with clipgen, after checking its pinned digest."""
    return load_judge(builtin.verified_folder(builtin.get("judge", "toy")) / "judge.safetensors")


def load_judge(path: Path) -> Judge:
    model = Judge()
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def read_attributes(model: Judge, images) -> list[dict]:
    """What the judge sees in each image: ``{"colour": "red", "shape": "star", ...}``."""
    logits = model(to_tensor(images))
    out = []
    for i in range(len(next(iter(logits.values())))):
        out.append({name: HEADS[name][int(logits[name][i].argmax())] for name in HEADS})
    return out
