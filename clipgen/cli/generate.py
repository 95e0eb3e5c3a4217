"""`clipgen generate` and `clipgen resume`."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stderr_console
from clipgen.errors import SettingsError

GEN = "Generator"
GUIDE = "Guidance (CLIP)"
OPT = "Optimisation"
OUT = "Output"
CFG = "Settings"
ANIM = "Animation"


def _split_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return [] if items == ["none"] else items


def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="What to draw: 'a red apple:1.5|blurry:-0.5'.")] = None,
    generator: Annotated[Optional[str], typer.Option("--generator", "-g", help="pixels, fourier, … (see README).",
                                                     rich_help_panel=GEN)] = None,
    size: Annotated[Optional[str], typer.Option(help="Image size WxH, e.g. 256x256.", rich_help_panel=GEN)] = None,
    init_image: Annotated[Optional[str], typer.Option(help="Start from this image.", rich_help_panel=GEN)] = None,
    init_weight: Annotated[Optional[float], typer.Option(help="Keep close to the init image (pixel MSE weight).",
                                                         rich_help_panel=GEN)] = None,
    mask: Annotated[Optional[str], typer.Option(help="Edit only where this image is white (with --init-image).",
                                                rich_help_panel=GEN)] = None,
    vqgan: Annotated[Optional[str], typer.Option(help="VQGAN model name (see `clipgen models list`).",
                                                 rich_help_panel=GEN)] = None,
    vqgan_config: Annotated[Optional[str], typer.Option(help="Local VQGAN .yaml (with --vqgan-checkpoint).",
                                                        rich_help_panel=GEN)] = None,
    vqgan_checkpoint: Annotated[Optional[str], typer.Option(help="Local VQGAN .ckpt (with --vqgan-config).",
                                                            rich_help_panel=GEN)] = None,
    biggan: Annotated[Optional[str], typer.Option(help="BigGAN-deep model name (biggan-deep-128/256/512).",
                                                  rich_help_panel=GEN)] = None,
    biggan_dir: Annotated[Optional[str], typer.Option(help="Local folder with config.json + pytorch_model.bin.",
                                                      rich_help_panel=GEN)] = None,
    biggan_class: Annotated[Optional[str], typer.Option(
        help="ImageNet class that starts (or with --set biggan.fix_class=true fixes) the search, "
             "e.g. 'golden retriever'.", rich_help_panel=GEN)] = None,
    truncation: Annotated[Optional[float], typer.Option(help="BigGAN truncation (0.02-1; lower: more typical).",
                                                        rich_help_panel=GEN)] = None,
    trust_checkpoint: Annotated[bool, typer.Option(
        "--trust-checkpoint", help="Unpickle a dVAE .pkl that has no pinned SHA-256 (only files you trust).",
        rich_help_panel=GEN)] = False,
    clip: Annotated[Optional[list[str]], typer.Option(
        "--clip", help="CLIP model, repeatable: ViT-B-32:openai, a local folder, ARCH:FILE, NAME@weight.",
        rich_help_panel=GUIDE)] = None,
    image_prompt: Annotated[Optional[list[str]], typer.Option(
        help="Image prompt PATH[:weight], repeatable.", rich_help_panel=GUIDE)] = None,
    cutn: Annotated[Optional[int], typer.Option(help="Cutouts per step.", rich_help_panel=GUIDE)] = None,
    cut_pow: Annotated[Optional[float], typer.Option(help="Cutout size power (>1: smaller crops).",
                                                     rich_help_panel=GUIDE)] = None,
    augment: Annotated[Optional[list[str]], typer.Option(
        help="Augmentations: affine,perspective,flip,jitter,erasing,sharpness,grayscale,noise or none.",
        rich_help_panel=GUIDE)] = None,
    tv_weight: Annotated[Optional[float], typer.Option(help="Total-variation smoothing weight.",
                                                       rich_help_panel=GUIDE)] = None,
    candidates: Annotated[Optional[int], typer.Option(help="Run N seeds and keep the best by CLIP score.",
                                                      rich_help_panel=GUIDE)] = None,
    keep: Annotated[Optional[int], typer.Option(help="Keep the K best candidates (best-1.png …).",
                                                rich_help_panel=GUIDE)] = None,
    rank_clip: Annotated[Optional[list[str]], typer.Option(
        "--rank-clip", help="CLIP model(s) ranking the candidates (default: the guiding ones).",
        rich_help_panel=GUIDE)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimisation steps.", rich_help_panel=OPT)] = None,
    story: Annotated[Optional[str], typer.Option(
        help="Prompt schedule 'a forest:0-150|a forest on fire:150-300', or a file of such lines.",
        rich_help_panel=ANIM)] = None,
    story_blend: Annotated[Optional[int], typer.Option(help="Cross-fade story segments over N steps.",
                                                       rich_help_panel=ANIM)] = None,
    zoom: Annotated[Optional[float], typer.Option(help="Zoom factor applied per frame (e.g. 1.02).",
                                                  rich_help_panel=ANIM)] = None,
    pan: Annotated[Optional[str], typer.Option(help="Pan X,Y pixels per frame.", rich_help_panel=ANIM)] = None,
    rotate: Annotated[Optional[float], typer.Option(help="Rotate degrees per frame.",
                                                    rich_help_panel=ANIM)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the generator's).",
                                                rich_help_panel=OPT)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or sgd.", rich_help_panel=OPT)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (default: drawn and recorded).",
                                                rich_help_panel=OPT)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.",
                                                  rich_help_panel=OPT)] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="auto, fp32, bf16 or fp16: the frozen models' precision (auto: bf16 on CUDA and on CPUs "
             "with bf16 matrix units, else fp32).", rich_help_panel=OPT)] = None,
    cut_batch: Annotated[Optional[int], typer.Option(
        help="Cutouts per CLIP forward (0: all); memory stays flat as --cutn grows.", rich_help_panel=OPT)] = None,
    compile: Annotated[Optional[str], typer.Option(
        help="torch.compile the CLIP image tower: auto (off), on, off.", rich_help_panel=OPT)] = None,
    out: Annotated[Optional[str], typer.Option(help="Output directory (a folder per run inside).",
                                               rich_help_panel=OUT)] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Save a frame every N steps; 0 for none.",
                                                      rich_help_panel=OUT)] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Save resumable state every N steps (default: with frames; 0: only on Ctrl-C).",
        rich_help_panel=OUT)] = None,
    video: Annotated[Optional[bool], typer.Option("--video/--no-video", help="Write an mp4 of the frames.",
                                                  rich_help_panel=OUT)] = None,
    gif: Annotated[Optional[bool], typer.Option("--gif/--no-gif", help="Write an animated gif of the frames.",
                                                rich_help_panel=OUT)] = None,
    fps: Annotated[Optional[int], typer.Option(help="Frames per second for video/gif.", rich_help_panel=OUT)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.",
                                        rich_help_panel=OUT)] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.",
                                               rich_help_panel=OUT)] = False,
    prompt_file: Annotated[Optional[str], typer.Option(help="Read the prompt from a UTF-8 text file.",
                                                       rich_help_panel=CFG)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved settings and a memory "
                                          "estimate, then exit.", rich_help_panel=CFG)] = False,
    preset: Annotated[Optional[str], typer.Option(help="Preset name or .toml path (flags override it).",
                                                  rich_help_panel=CFG)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any setting as key=value, e.g. --set fourier.decay=1.5 (repeatable).",
        rich_help_panel=CFG)] = None,
    offline: Annotated[Optional[bool], typer.Option("--offline/--online", help="Never touch the network.",
                                                    rich_help_panel=CFG)] = None,
) -> None:
    """Generate an image for PROMPT."""
    from clipgen.config.settings import resolve_run_settings

    if prompt_file is not None:
        if prompt is not None:
            raise SettingsError("give the prompt either as an argument or with --prompt-file, not both")
        prompt = read_prompt_file(prompt_file)
    if story is not None:
        story = _read_story(story)
    flags = {
        "prompt": prompt, "mask": mask, "story": story, "story_blend": story_blend, "zoom": zoom, "pan": pan,
        "rotate": rotate, "generator": generator, "size": size, "init_image": init_image,
        "init_weight": init_weight, "clip": clip, "image_prompts": image_prompt, "cutn": cutn,
        "cut_pow": cut_pow, "augment": _split_list(augment), "tv_weight": tv_weight, "steps": steps,
        "lr": lr, "optimizer": optimizer, "seed": seed, "device": device, "precision": precision,
        "cut_batch": cut_batch, "compile": compile, "out": out,
        "save_every": save_every, "candidates": candidates, "keep": keep, "rank_clip": rank_clip, "checkpoint_every": checkpoint_every, "video": video, "gif": gif, "fps": fps, "offline": offline,
    }
    vqgan_flags = {"model": vqgan, "config": vqgan_config, "checkpoint": vqgan_checkpoint}
    if any(v is not None for v in vqgan_flags.values()):
        flags["vqgan"] = {k: v for k, v in vqgan_flags.items() if v is not None}
    if trust_checkpoint:
        flags["dvae"] = {"trust_checkpoint": True}
    biggan_flags = {"model": biggan, "model_dir": biggan_dir, "class_name": biggan_class, "truncation": truncation}
    if any(v is not None for v in biggan_flags.values()):
        flags["biggan"] = {k: v for k, v in biggan_flags.items() if v is not None}
    settings = resolve_run_settings(preset=preset, flags=flags, assignments=set_)
    if dry_run:
        _dry_run(settings)
        return
    from clipgen.api import run

    _run_with_progress(lambda callbacks: run(settings, callbacks=callbacks), quiet, json_summary)


def resume(
    folder: Annotated[str, typer.Argument(help="A run folder (OUT/<slug>) holding state.pt.")],
    steps: Annotated[Optional[int], typer.Option(min=1, help="Run to this many steps in total (default: "
                                                 "the original count).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Continue an interrupted run from its last saved state."""
    from clipgen.api import resume as resume_run

    _run_with_progress(lambda callbacks: resume_run(folder, callbacks=callbacks, steps=steps),
                       quiet, json_summary)


def _read_story(value: str) -> str:
    from pathlib import Path

    from clipgen.inputs import read_text_file

    if Path(value).expanduser().is_file():
        lines = read_text_file(value, "story file").splitlines()
        return "|".join(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    return value


def read_prompt_file(path: str) -> str:
    from clipgen.inputs import read_text_file

    text = read_text_file(path, "prompt file")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _dry_run(settings) -> None:
    from clipgen.hardware import resolve_device
    from clipgen.generators import get_generator_class
    from clipgen.hardware import available_bytes, estimate_bytes, gib
    from clipgen.hardware import precision_name, resolve_precision

    device = resolve_device(settings.device)
    dtype = resolve_precision(settings.precision, device)
    need = estimate_bytes(settings.width, settings.height, settings.cutn,
                          image_factor=get_generator_class(settings.generator).memory_factor,
                          cut_batch=settings.cut_batch, dtype=dtype)
    sys.stdout.write(json.dumps(settings.to_dict(), indent=2) + "\n")
    have = available_bytes(device)
    stderr_console().print(f"estimated peak memory: {gib(need)} (CLIP and generator weights extra) at "
                           f"{precision_name(dtype)} on {device.type}; "
                           f"available: {gib(have) if have else 'unknown'}")


@contextlib.contextmanager
def _nothing():
    yield


def _run_with_progress(start, quiet: bool, json_summary: bool) -> None:
    from clipgen.api import RunInterrupted
    from clipgen.cli.progress import ProgressBar

    console = stderr_console()
    progress = None if quiet else ProgressBar(console)
    try:
        with progress or _nothing():
            result = start([progress] if progress else [])
    except RunInterrupted as stopped:
        console.print(f"[yellow]{stopped}[/]")
        raise typer.Exit(130)
    except KeyboardInterrupt:
        console.print("[yellow]stopped at once[/]: the last saved state.pt is intact")
        raise typer.Exit(130)
    if json_summary:
        sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
    elif not quiet:
        from clipgen.cli.progress import print_summary

        print_summary(console, result)
