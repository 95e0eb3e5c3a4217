"""The command line. The only module that reads argv and talks to the terminal."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from typing import Annotated, Optional

import click
import typer

from clipgen import __version__
from clipgen.errors import ClipgenError

app = typer.Typer(
    name="clipgen",
    help="Text to image by CLIP-guided optimisation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
presets_app = typer.Typer(help="List and inspect presets.", no_args_is_help=True)
app.add_typer(presets_app, name="presets")


def _mount_subcommands() -> None:
    from clipgen.cli_models import models_app
    from clipgen.cli_toy import toy_app

    app.add_typer(models_app, name="models")
    app.add_typer(toy_app, name="toy")


_mount_subcommands()

GEN = "Generator"
GUIDE = "Guidance (CLIP)"
OPT = "Optimisation"
OUT = "Output"
CFG = "Settings"


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def _stdout():
    from rich.console import Console

    return Console(highlight=False)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clipgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """clipgen: a differentiable generator makes an image, CLIP scores it against your
    prompt, and gradients flow back until the image matches."""


def _split_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return [] if items == ["none"] else items


@app.command(no_args_is_help=True)
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="What to draw: 'a red apple:1.5|blurry:-0.5'.")] = None,
    generator: Annotated[Optional[str], typer.Option("--generator", "-g", help="pixels, fourier, … (see README).",
                                                     rich_help_panel=GEN)] = None,
    size: Annotated[Optional[str], typer.Option(help="Image size WxH, e.g. 256x256.", rich_help_panel=GEN)] = None,
    init_image: Annotated[Optional[str], typer.Option(help="Start from this image.", rich_help_panel=GEN)] = None,
    init_weight: Annotated[Optional[float], typer.Option(help="Keep close to the init image (pixel MSE weight).",
                                                         rich_help_panel=GEN)] = None,
    vqgan: Annotated[Optional[str], typer.Option(help="VQGAN model name (see `clipgen models list`).",
                                                 rich_help_panel=GEN)] = None,
    vqgan_config: Annotated[Optional[str], typer.Option(help="Local VQGAN .yaml (with --vqgan-checkpoint).",
                                                        rich_help_panel=GEN)] = None,
    vqgan_checkpoint: Annotated[Optional[str], typer.Option(help="Local VQGAN .ckpt (with --vqgan-config).",
                                                            rich_help_panel=GEN)] = None,
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
    steps: Annotated[Optional[int], typer.Option(help="Optimisation steps.", rich_help_panel=OPT)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Learning rate (default: the generator's).",
                                                rich_help_panel=OPT)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam, adamw or sgd.", rich_help_panel=OPT)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (default: drawn and recorded).",
                                                rich_help_panel=OPT)] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda, cuda:N or mps.",
                                                  rich_help_panel=OPT)] = None,
    out: Annotated[Optional[str], typer.Option(help="Output directory (a folder per run inside).",
                                               rich_help_panel=OUT)] = None,
    save_every: Annotated[Optional[int], typer.Option(help="Save a frame every N steps; 0 for none.",
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
    preset: Annotated[Optional[str], typer.Option(help="Preset name or .toml path (flags override it).",
                                                  rich_help_panel=CFG)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any setting as key=value, e.g. --set fourier.decay=1.5 (repeatable).",
        rich_help_panel=CFG)] = None,
    offline: Annotated[Optional[bool], typer.Option("--offline/--online", help="Never touch the network.",
                                                    rich_help_panel=CFG)] = None,
) -> None:
    """Generate an image for PROMPT."""
    from clipgen.settings import resolve_run_settings

    flags = {
        "prompt": prompt, "generator": generator, "size": size, "init_image": init_image,
        "init_weight": init_weight, "clip": clip, "image_prompts": image_prompt, "cutn": cutn,
        "cut_pow": cut_pow, "augment": _split_list(augment), "tv_weight": tv_weight, "steps": steps,
        "lr": lr, "optimizer": optimizer, "seed": seed, "device": device, "out": out,
        "save_every": save_every, "video": video, "gif": gif, "fps": fps, "offline": offline,
    }
    vqgan_flags = {"model": vqgan, "config": vqgan_config, "checkpoint": vqgan_checkpoint}
    if any(v is not None for v in vqgan_flags.values()):
        flags["vqgan"] = {k: v for k, v in vqgan_flags.items() if v is not None}
    settings = resolve_run_settings(preset=preset, flags=flags, assignments=set_)
    _run_generate(settings, quiet=quiet, json_summary=json_summary)


@contextlib.contextmanager
def _nothing():
    yield


def _run_generate(settings, quiet: bool, json_summary: bool) -> None:
    from clipgen.api import run

    from clipgen.progress import ProgressBar

    console = _stderr()
    progress = None if quiet else ProgressBar(console)
    try:
        with progress or _nothing():
            result = run(settings, callbacks=[progress] if progress else [])
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: the last image and run.json were saved")
        raise typer.Exit(130)
    if json_summary:
        sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
    elif not quiet:
        from clipgen.progress import print_summary

        print_summary(console, result)


ClipOption = Annotated[Optional[list[str]], typer.Option(
    "--clip", help="CLIP model(s), as for generate (default: the settings default).")]


def _load_for_scoring(clip: list[str] | None, image_paths: list[str], device: str, offline: bool):
    from clipgen.api import env_offline
    from clipgen.devices import resolve_device
    from clipgen.inputs import load_image
    from clipgen.perceptor import load_perceptor
    from clipgen.settings import Settings

    images = [load_image(p, "image") for p in image_paths]
    specs = tuple(clip) if clip else Settings().clip
    perceptor = load_perceptor(specs, resolve_device(device), offline=offline or env_offline())
    return perceptor, images


@app.command(no_args_is_help=True)
def score(
    images: Annotated[list[str], typer.Argument(help="Image files.")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Text to score against (repeatable).")],
    clip: ClipOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Cosine similarity of each image to each prompt."""
    from clipgen.scoring import similarity_matrix

    perceptor, loaded = _load_for_scoring(clip, images, device, offline)
    sims = similarity_matrix(perceptor, loaded, prompt)
    if json_out:
        rows = [{"image": i, "prompt": p, "similarity": round(float(sims[a, b]), 6)}
                for a, i in enumerate(images) for b, p in enumerate(prompt)]
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("image", *prompt)
    for a, image in enumerate(images):
        table.add_row(image, *(f"{float(sims[a, b]):.4f}" for b in range(len(prompt))))
    _stdout().print(table)


@app.command(no_args_is_help=True)
def classify(
    image: Annotated[str, typer.Argument(help="Image file.")],
    labels: Annotated[str, typer.Option(help="Comma-separated labels, e.g. 'a cat,a dog,a giraffe'.")],
    clip: ClipOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Zero-shot classification: softmax over the labels with CLIP's logit scale."""
    from clipgen.errors import SettingsError
    from clipgen.scoring import zero_shot_probabilities

    names = [label.strip() for label in labels.split(",") if label.strip()]
    if len(names) < 2:
        raise SettingsError("--labels needs at least two comma-separated labels, e.g. 'a cat,a dog'")
    perceptor, loaded = _load_for_scoring(clip, [image], device, offline)
    probs = zero_shot_probabilities(perceptor, loaded, names)[0]
    ranked = sorted(zip(names, probs.tolist()), key=lambda item: -item[1])
    if json_out:
        sys.stdout.write(json.dumps({"image": image, "probabilities": dict(ranked)}, indent=2) + "\n")
        return
    from rich.table import Table

    table = Table("label", "probability")
    for name, p in ranked:
        table.add_row(name, f"{p:.4f}")
    _stdout().print(table)


@presets_app.command("list")
def presets_list() -> None:
    """Name, generator and description of every preset."""
    from rich.table import Table

    from clipgen.presets import available_presets, load_preset

    table = Table("preset", "generator", "description")
    for name in available_presets():
        preset = load_preset(name)
        table.add_row(name, str(preset.values.get("generator", "(default)")), preset.description)
    _stdout().print(table)


@presets_app.command("show")
def presets_show(name: Annotated[str, typer.Argument(help="Preset name or .toml path.")]) -> None:
    """The fully resolved settings of a preset, as TOML-like key = value lines."""
    from clipgen.settings import resolve_run_settings

    settings = resolve_run_settings(preset=name)
    console = _stdout()
    for key, value in settings.to_dict().items():
        if isinstance(value, dict):
            continue
        console.print(f"{key} = {json.dumps(value)}")
    section = settings.to_dict()[settings.generator]
    if section:
        console.print(f"\n[{settings.generator}]", markup=False)
        for key, value in section.items():
            console.print(f"{key} = {json.dumps(value)}")


def _setup_logging() -> None:
    from rich.logging import RichHandler

    handler = RichHandler(console=_stderr(), show_time=False, show_path=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("clipgen")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    # Third-party libraries (huggingface_hub retries, open_clip) log at WARNING through the
    # root logger; their failures reach the user as our own one-line errors instead.
    logging.getLogger().setLevel(logging.ERROR + 10)


# Recent typer vendors its own click; older ones use click itself. Catch both.
_EXIT = tuple({typer.Exit, click.exceptions.Exit})
_ABORT = tuple({typer.Abort, click.exceptions.Abort})
_USAGE = tuple({getattr(typer, "TyperException", click.ClickException), click.ClickException})


def main(argv: list[str] | None = None) -> None:
    """Entry point: every user error becomes one line on stderr and exit status 2."""
    _setup_logging()
    try:
        app(args=argv, prog_name="clipgen", standalone_mode=False)
    except _EXIT as exc:
        sys.exit(getattr(exc, "exit_code", 0))
    except _ABORT:
        sys.exit(130)
    except _USAGE as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        sys.stderr.write(f"clipgen: error: {message}\n")
        sys.exit(2)
    except ClipgenError as exc:
        sys.stderr.write(f"clipgen: error: {exc}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(0)
