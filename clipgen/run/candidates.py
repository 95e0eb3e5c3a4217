"""Candidates and reranking (the DALL-E recipe): run N seeds, keep the K that a CLIP
model — possibly a different one from the guide — scores best against the prompt."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from typing import Iterable

import torch

from clipgen.errors import SettingsError


@torch.no_grad()
def rank_scores(perceptor, images: list, prompt: str) -> list[float]:
    """Weighted mean cosine similarity of each image to the prompt's positive parts."""
    from clipgen.guidance.prompts import parse_prompts
    from clipgen.guidance.scoring import similarity_matrix

    positive = [p for p in parse_prompts(prompt) if p.weight > 0]
    sims = similarity_matrix(perceptor, images, [p.text for p in positive])
    weights = torch.tensor([p.weight for p in positive])
    return ((sims * weights).sum(dim=1) / weights.sum()).tolist()


# What a kept candidate is copied as, next to the candidates: best-1.png, best-1.svg, ...
_KEPT_FILES = (("image", ".png"), ("svg", ".svg"))


def run_candidates(settings, callbacks: Iterable = (), perceptor=None):
    """Run ``settings.candidates`` seeds into ``OUT/<slug>/candidates/`` and keep the best."""
    from clipgen import api
    from clipgen.hardware import resolve_device
    from clipgen.atomic import atomic_path, write_text
    from clipgen.outputs.naming import make_run_dir
    from clipgen.guidance.perceptor import load_perceptor
    from clipgen.run.session import check_inputs, load_run_perceptor

    if settings.keep > settings.candidates:
        raise SettingsError(f"--keep {settings.keep} is more than --candidates {settings.candidates}")
    if not settings.prompt:
        raise SettingsError("ranking candidates needs a text prompt")
    settings, device, *_ = check_inputs(settings)
    if perceptor is None:
        perceptor = load_run_perceptor(settings, device)
    ranker = (load_perceptor(settings.rank_clip, resolve_device(settings.device), offline=settings.offline)
              if settings.rank_clip else perceptor)
    folder = make_run_dir(settings.out, api.run_slug(settings))
    single = replace(settings, candidates=1, keep=1, rank_clip=(), out=str(folder / "candidates"))
    results = [api.run(replace(single, seed=settings.seed + i), callbacks=callbacks, perceptor=perceptor,
                       folder_name=f"seed-{settings.seed + i}") for i in range(settings.candidates)]
    scores = rank_scores(ranker, [r.image for r in results], settings.prompt)
    order = sorted(range(len(results)), key=lambda i: -scores[i])
    kept = []
    for rank, i in enumerate(order[: settings.keep], start=1):
        for key, suffix in _KEPT_FILES:
            if key in results[i].paths:
                with atomic_path(folder / f"best-{rank}{suffix}") as tmp:
                    shutil.copyfile(results[i].paths[key], tmp)
        kept.append({"rank": rank, "seed": results[i].settings.seed, "score": scores[i],
                     "image": str(folder / f"best-{rank}.png"), "run": str(results[i].paths["folder"])})
    record = {
        "status": "finished", "prompt": settings.prompt, "settings": settings.to_dict(),
        "rank_clip": list(settings.rank_clip) or list(settings.clip),
        "candidates": [{"seed": r.settings.seed, "score": s, "run": str(r.paths["folder"])}
                       for r, s in zip(results, scores)],
        "kept": kept,
    }
    write_text(folder / "run.json", json.dumps(record, indent=2))
    best = results[order[0]]
    best.paths = {**best.paths, "folder": folder, "run_json": folder / "run.json",
                  **{key: folder / f"best-1{suffix}" for key, suffix in _KEPT_FILES if key in best.paths}}
    best.extra["candidates"] = record["candidates"]
    best.extra["kept"] = kept
    return best
