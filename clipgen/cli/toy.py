"""`clipgen toy …`: train the offline toy-world models and judge images against prompts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stderr_console, stdout_console

toy_app = typer.Typer(help="The offline toy world: train its models, judge images.", no_args_is_help=True)

# Options the training commands share.
Steps = Annotated[int, typer.Option(min=1, help="Optimiser steps.")]
BatchSize = Annotated[int, typer.Option(min=2, help="Images per batch.")]
Threads = Annotated[int, typer.Option(min=1, help="CPU threads.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]


def _train(label: str, steps: int, train) -> None:
    """``train(on_step)`` under the CLI's progress bar; its metrics go to stdout as JSON."""
    from clipgen.cli.progress import StepProgress  # imports torch: only when training

    with StepProgress(stderr_console(), label, total=steps) as bar:
        metrics = train(bar.update)
    sys.stdout.write(json.dumps(metrics, indent=2) + "\n")


@toy_app.command("train-clip")
def train_clip_command(
    out: Annotated[Path, typer.Option(help="Folder for open_clip_config.json + weights.")],
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps (the cosine schedule spans them).")] = 780,
    batch_size: BatchSize = 256,
    lr: Annotated[float, typer.Option(min=0.0, help="Peak learning rate.")] = 1.5e-3,
    minutes: Annotated[Optional[float], typer.Option(
        min=0.1, help="Stop after this many minutes (the shipped model stopped at 706 of 780 steps).")] = 19.5,
    threads: Threads = 2,
    seed: Seed = 0,
    tower: Annotated[str, typer.Option(help="Image tower: resnet (open_clip ModifiedResNet) or vit.")] = "resnet",
) -> None:
    """Train the toy CLIP from scratch on the shapes world (CPU)."""
    from clipgen.errors import SettingsError
    from clipgen.toy.train_clip import TOWERS, TrainConfig, train

    if tower not in TOWERS:
        raise SettingsError(f"unknown image tower {tower!r}; choose one of: {', '.join(TOWERS)}")
    config = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, threads=threads, seed=seed, tower=tower,
                         pool_batches=min(120, steps), max_seconds=minutes * 60 if minutes else None)
    _train("train-clip", steps, lambda on_step: train(config, out_dir=out, on_step=on_step))


@toy_app.command("train-vqgan")
def train_vqgan_command(
    out: Annotated[Path, typer.Option(help="Folder for model.yaml + last.ckpt (taming format).")],
    steps: Steps = 3000,
    batch_size: BatchSize = 32,
    minutes: Annotated[Optional[float], typer.Option(min=0.1, help="Stop after this many minutes.")] = None,
    threads: Threads = 2,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--fp32",
                                                 help="Autocast convolutions to bf16 (default: if the CPU has AMX).")] = None,
    downsample: Annotated[int, typer.Option(
        help="Pixels per token side: 4 (16×16 tokens, the shipped model), 8 or 16 (coarser grids for a prior).")] = 4,
    codes: Annotated[int, typer.Option(min=2, help="Codebook size.")] = 512,
    seed: Seed = 0,
) -> None:
    """Train the toy VQGAN (taming architecture) on the shapes world (CPU)."""
    from clipgen.toy.train_vqgan import VQTrainConfig, train

    config = VQTrainConfig(steps=steps, batch_size=batch_size, threads=threads, seed=seed, bf16=bf16,
                           downsample=downsample, codes=codes,
                           max_seconds=minutes * 60 if minutes else None, pool_images=min(12_000, steps * batch_size))
    _train("train-vqgan", steps, lambda on_step: train(config, out_dir=out, on_step=on_step))


@toy_app.command("train-prior")
def train_prior_command(
    out: Annotated[Path, typer.Option(help="Folder for prior.safetensors + training.json.")],
    vqgan: Annotated[Optional[Path], typer.Option(
        help="Folder of the prior's VQGAN (model.yaml + last.ckpt; default: the built-in toy).")] = None,
    steps: Steps = 6000,
    batch_size: BatchSize = 32,
    minutes: Annotated[Optional[float], typer.Option(min=0.1, help="Stop after this many minutes.")] = 40.0,
    code_rate: Annotated[float, typer.Option(
        min=0.0, help="Rate cost on rare codes when images are tokenised (0: plain nearest codes; the shipped prior: 0.3).")] = 0.3,
    threads: Threads = 2,
    seed: Seed = 0,
) -> None:
    """Train the toy prior (a small transformer over the toy VQGAN's tokens) on the shapes world (CPU)."""
    from clipgen.toy.train_prior import PriorTrainConfig, train
    from clipgen.weights import builtin

    folder = vqgan or builtin.verified_folder(builtin.get("vqgan", "toy"))
    config = PriorTrainConfig(vqgan=str(folder), steps=steps, batch_size=batch_size, threads=threads, seed=seed,
                              code_rate=code_rate, max_seconds=minutes * 60 if minutes else None)
    _train("train-prior", steps, lambda on_step: train(config, out_dir=out, on_step=on_step))


@toy_app.command("train-judge")
def train_judge_command(
    out: Annotated[Path, typer.Option(help="Folder for judge.safetensors.")],
    steps: Steps = 1200, batch_size: BatchSize = 128, threads: Threads = 2,
) -> None:
    """Train the judge: a supervised CNN reading colour, shape, background, position, count."""
    from clipgen.toy.judge import JudgeConfig, train_judge

    config = JudgeConfig(steps=steps, batch_size=batch_size, threads=threads)
    _train("train-judge", steps, lambda on_step: train_judge(config, out_dir=out, on_step=on_step))


@toy_app.command("judge")
def judge_command(
    image: Annotated[str, typer.Argument(help="Image file (resized to 64×64).")],
    prompt: Annotated[str, typer.Option(help="The prompt the image should show.")],
    judge: Annotated[Optional[Path], typer.Option(help="judge.safetensors (default: the shipped one).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which attributes of PROMPT the image shows, as read by the judge."""
    from clipgen.errors import ModelError, PromptError
    from clipgen.inputs import load_image
    from clipgen.toy.judge import load_judge, load_shipped_judge, read_attributes
    from clipgen.toy.vocab import prompt_attributes

    if judge is not None and not judge.is_file():
        raise ModelError(f"judge weights {judge} not found; train them with "
                         "`clipgen toy train-judge --out DIR` and pass --judge DIR/judge.safetensors")
    wanted = prompt_attributes(prompt)
    if not wanted:
        raise PromptError(f"prompt {prompt!r} names no toy-world attribute (colour, shape, background, position)")
    model = load_judge(judge) if judge is not None else load_shipped_judge()
    seen = read_attributes(model, [load_image(image, "image")])[0]
    verdict = {name: {"prompt": value, "image": seen[name], "ok": seen[name] == value}
               for name, value in wanted.items()}
    if json_out:
        sys.stdout.write(json.dumps({"image": image, "prompt": prompt, "attributes": verdict}, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("attribute", "prompt", "image", "match")
    for name, row in verdict.items():
        table.add_row(name, str(row["prompt"]), str(row["image"]), "yes" if row["ok"] else "no")
    stdout_console().print(table)
