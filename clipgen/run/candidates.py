"""Candidates and reranking (the DALL-E recipe): run N seeds, keep the K that a CLIP
model — possibly a different one from the guide — scores best against the prompt."""

from __future__ import annotations

import shutil
import time
from typing import Iterable

import torch

from clipgen.atomic import atomic_path
from clipgen.guidance.perceptor import Perceptor, load_perceptor
from clipgen.guidance.prompts import Prompt
from clipgen.guidance.scoring import similarity_matrix, weighted_prompt_score
from clipgen.outputs.naming import make_run_dir
from clipgen.outputs.run_record import write_record
from clipgen.run.plan import RunPlan
from clipgen.run.session import load_evaluator, load_run_perceptor
from clipgen.run.single import Result, run_single

# What a kept candidate is copied as, next to the candidates: best-1.png, best-1.svg, ...
KEPT_FILES = (("image", ".png"), ("svg", ".svg"))


@torch.no_grad()
def rank_scores(perceptor: Perceptor, images: list, prompts: tuple[Prompt, ...]) -> list[float]:
    """Weighted mean cosine similarity of each image to the prompt's positive parts."""
    positive = [p for p in prompts if p.weight > 0]
    sims = similarity_matrix(perceptor, images, [p.text for p in positive])
    return weighted_prompt_score(sims, positive).tolist()


def run_candidates(plan: RunPlan, callbacks: Iterable = (), perceptor: Perceptor | None = None,
                   folder_name: str | None = None) -> Result:
    """Run ``candidates`` seeds into ``OUT/<slug>/candidates/seed-N/`` and keep the best;
    ``folder_name`` replaces the slug (batch items)."""
    started = time.perf_counter()
    settings = plan.settings
    if perceptor is None:
        perceptor = load_run_perceptor(plan)
    ranker = perceptor
    if plan.inputs.rank_clip:
        ranker = load_perceptor(plan.inputs.rank_clip, plan.device, offline=settings.offline, dtype=plan.dtype)
    folder = make_run_dir(settings.out, folder_name or plan.slug)
    single = plan.with_settings(candidates=1, keep=1, rank_clip=(), out=str(folder / "candidates"))
    evaluator = load_evaluator(plan)
    results = [run_single(single.with_settings(seed=settings.seed + i), callbacks=callbacks, perceptor=perceptor,
                          folder_name=f"seed-{settings.seed + i}", evaluator=evaluator)
               for i in range(settings.candidates)]
    scores = rank_scores(ranker, [r.image for r in results], plan.inputs.prompts)
    order = sorted(range(len(results)), key=lambda i: -scores[i])
    kept = [_keep(results[i], scores[i], rank, folder) for rank, i in enumerate(order[: settings.keep], start=1)]
    record = {
        "status": "finished", "prompt": settings.prompt, "settings": settings.to_dict(),
        "rank_clip": list(settings.rank_clip) or list(settings.clip),
        "candidates": [{"seed": r.settings.seed, "score": s, "run": str(r.paths["folder"]),
                        **({"held_out": r.held_out} if r.held_out else {})}
                       for r, s in zip(results, scores)],
        "kept": kept,
        # The keys every finished run.json has, so batch's contact sheet and skips read it alike.
        "seed": results[order[0]].settings.seed, "final_similarity": scores[order[0]],
        "files": {"image": kept[0]["image"]}, "seconds": round(time.perf_counter() - started, 3),
    }
    run_json = write_record(folder, record)
    best = results[order[0]]
    best.paths = {**best.paths, "folder": folder, "run_json": run_json,
                  **{key: folder / f"best-1{suffix}" for key, suffix in KEPT_FILES if key in best.paths}}
    best.extra["candidates"] = record["candidates"]
    best.extra["kept"] = kept
    return best


def _keep(result: Result, score: float, rank: int, folder) -> dict:
    """Copy a kept candidate's files next to the candidates as ``best-RANK.*``."""
    for key, suffix in KEPT_FILES:
        if key in result.paths:
            with atomic_path(folder / f"best-{rank}{suffix}") as tmp:
                shutil.copyfile(result.paths[key], tmp)
    return {"rank": rank, "seed": result.settings.seed, "score": score,
            "image": str(folder / f"best-{rank}.png"), "run": str(result.paths["folder"]),
            **({"held_out": result.held_out} if result.held_out else {})}
