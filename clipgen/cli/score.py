"""`clipgen score` and `clipgen classify`: CLIP's own uses."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stdout_console

ClipOption = Annotated[Optional[list[str]], typer.Option(
    "--clip", help="CLIP model(s), as for generate (default: the settings default).")]


def _load_for_scoring(clip: list[str] | None, image_paths: list[str], device: str, offline: bool):
    from clipgen.config.settings import Settings, offline_from_environment
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.hardware import resolve_device
    from clipgen.inputs import load_image

    images = [load_image(p, "image") for p in image_paths]
    specs = tuple(clip) if clip else Settings().clip
    # The edge reads the environment's offline rule once; the loader is told, never reads it.
    perceptor = load_perceptor(specs, resolve_device(device), offline=offline or offline_from_environment())
    return perceptor, images


def score(
    images: Annotated[list[str], typer.Argument(help="Image files.")],
    prompt: Annotated[list[str], typer.Option("--prompt", "-p", help="Text to score against (repeatable).")],
    clip: ClipOption = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    offline: Annotated[bool, typer.Option("--offline", help="Never touch the network.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    augment: Annotated[int, typer.Option("--augment", min=0, max=1024, help=(
        "Score the mean over N augmented views (random crops, affine, noise: what a run sees) instead of "
        "the whole image; 0: the whole image."))] = 0,
    augmentations: Annotated[str, typer.Option(help="Comma-separated augmentations of --augment's views.")] = (
        "affine,perspective,jitter,noise"),
    seed: Annotated[int, typer.Option(help="Seed of the augmented views.")] = 0,
) -> None:
    """Cosine similarity of each image to each prompt."""
    from clipgen.guidance.scoring import augmented_similarity_matrix, similarity_matrix

    from clipgen.guidance.augmentations import check_augmentations

    kinds = tuple(a.strip() for a in augmentations.split(",") if a.strip())
    check_augmentations(kinds)
    perceptor, loaded = _load_for_scoring(clip, images, device, offline)
    if augment:
        sims = augmented_similarity_matrix(perceptor, loaded, prompt, augment, kinds, seed=seed)
    else:
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
    stdout_console().print(table)


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
    from clipgen.guidance.scoring import zero_shot_probabilities

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
    stdout_console().print(table)
