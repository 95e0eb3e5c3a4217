"""The DALL-E recipe, then CLIP guidance: sample token grids from a prior, decode them,
rank them with CLIP, keep the best K, and refine each kept one by CLIP-guided optimisation
of its VQGAN latents, starting from the sampled tokens (``--steps 0``: rank only).

Writes into ``OUT/<slug>/``: ``candidates/candidate-NNN.png`` and ``candidates.png`` (all
samples), ``index.html`` (scores, kept ones marked), ``kept-K/`` (each refinement, a
normal run folder: frames, video, ``state.pt``), ``before-K.png`` and ``best-K.png`` (a
kept sample before and after refinement) and ``run.json`` with
every score and the kept samples' tokens, so an interrupted run resumes exactly.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Iterable

import torch
from PIL import Image

from clipgen.atomic import atomic_path
from clipgen.config.settings import Settings, offline_from_environment
from clipgen.errors import SettingsError
from clipgen.generators.base import TokenGrid
from clipgen.guidance.perceptor import Perceptor, load_perceptor
from clipgen.hardware import peak_rss_mb
from clipgen.outputs.contact_sheet import Card, write_cards
from clipgen.outputs.images import grid_image, save_png, tensor_to_pil
from clipgen.outputs.naming import make_run_dir
from clipgen.outputs.run_record import is_finished, read_record, write_record
from clipgen.priors.base import PriorContext
from clipgen.priors.registry import load_prior
from clipgen.priors.sampling import Sampling, sample_grids
from clipgen.run.candidates import rank_scores
from clipgen.run.plan import RunPlan, plan_run, prior_start
from clipgen.run.session import load_run_perceptor, make_generator
from clipgen.run.single import Result, RunInterrupted, resume_run, run_single

SAMPLE_BATCH = 16


def run_prior(plan: RunPlan, callbacks: Iterable = (), perceptor: Perceptor | None = None,
              folder_name: str | None = None) -> Result:
    started = time.perf_counter()
    settings, start = plan.settings, prior_start(plan.settings)
    callbacks = list(callbacks)
    if not settings.prompt:
        raise SettingsError("a prior start needs a text prompt (the prior writes tokens for a text)")
    # The decoder first: it checks the size before anything heavy loads.
    decoder = make_generator(plan)
    if not isinstance(decoder, TokenGrid):
        raise SettingsError(f"generator {settings.generator!r} has no token grid for a prior to write")
    prior = load_prior(start.prior, PriorContext(plan.device, settings.offline, plan.dtype))
    if tuple(prior.grid) != tuple(decoder.tokens_hw):
        h, w = prior.grid
        factor = settings.height // decoder.tokens_hw[0]
        raise SettingsError(f"the prior {start.prior!r} writes {h}×{w} tokens, which this VQGAN decodes at "
                            f"{w * factor}x{h * factor}; use --size {w * factor}x{h * factor}")
    perceptor = perceptor or load_run_perceptor(plan)
    ranker = _ranker(plan, perceptor)

    sampling = Sampling(start.temperature, start.top_k,
                        prior.default_guidance if start.guidance is None else start.guidance)
    progress = [c.on_prior_token for c in callbacks if hasattr(c, "on_prior_token")]
    sample_started = time.perf_counter()
    tokens = sample_grids(prior, settings.prompt, settings.candidates, settings.seed, sampling,
                          batch_size=SAMPLE_BATCH, on_token=lambda done, total: [f(done, total) for f in progress])
    sample_seconds = time.perf_counter() - sample_started
    images = [tensor_to_pil(image) for image in decoder.decode_tokens(tokens)]
    del prior, decoder
    scores = rank_scores(ranker, images, plan.inputs.prompts)
    ranked = sorted(range(len(images)), key=lambda i: -scores[i])
    order = ranked[: settings.keep]

    folder = make_run_dir(settings.out, folder_name or plan.slug)
    candidate_files = _write_candidates(folder, images, scores, ranked, settings.keep)
    record = {
        "status": "running", "kind": "prior", "prompt": settings.prompt, "settings": settings.to_dict(),
        "prior": {"name": start.prior, "temperature": sampling.temperature, "top_k": sampling.top_k,
                  "guidance": sampling.guidance, "samples": len(images), "seconds": round(sample_seconds, 3)},
        "rank_clip": list(settings.rank_clip) or list(settings.clip),
        "candidates": [{"index": i, "score": scores[i], "image": str(candidate_files[i])} for i in range(len(images))],
        "kept": [{"rank": rank, "candidate": i, "score_before": scores[i], "tokens": tokens[i].tolist()}
                 for rank, i in enumerate(order, start=1)],
    }
    write_record(folder, record)
    return _refine(plan, folder, record, callbacks, perceptor, ranker, started)


def resume_prior(folder: Path, callbacks: Iterable = (), steps: int | None = None,
                 device: str | None = None) -> Result:
    """Finish a prior run: refinements already done are kept, interrupted ones resume from
    their ``state.pt``, the rest start from the tokens ``run.json`` recorded."""
    record = read_record(folder)
    settings = Settings.from_dict(record["settings"], source=str(folder / "run.json"))
    settings = replace(settings, steps=steps or settings.steps, device=device or settings.device,
                       offline=settings.offline or offline_from_environment())
    plan = plan_run(settings)
    perceptor = load_run_perceptor(plan)
    return _refine(plan, folder, record, list(callbacks), perceptor, _ranker(plan, perceptor), time.perf_counter())


def _ranker(plan: RunPlan, perceptor: Perceptor) -> Perceptor:
    """``--rank-clip`` models, or the guiding ones."""
    if not plan.inputs.rank_clip:
        return perceptor
    return load_perceptor(plan.inputs.rank_clip, plan.device, offline=plan.settings.offline, dtype=plan.dtype)


def _refine(plan: RunPlan, folder: Path, record: dict, callbacks: list, perceptor: Perceptor, ranker: Perceptor,
            started: float) -> Result:
    settings = plan.settings
    results = []
    for kept in record["kept"]:
        rank = kept["rank"]
        best = folder / f"best-{rank}.png"
        if settings.steps == 0:
            with atomic_path(best) as tmp:
                shutil.copyfile(record["candidates"][kept["candidate"]]["image"], tmp)
            kept.update(image=str(best), score_after=kept["score_before"])
            continue
        before = folder / f"before-{rank}.png"
        with atomic_path(before) as tmp:
            shutil.copyfile(record["candidates"][kept["candidate"]]["image"], tmp)
        kept["image_before"] = str(before)
        sub = folder / f"kept-{rank}"
        try:
            result = _refine_one(plan, folder, sub, torch.tensor(kept["tokens"]), callbacks, perceptor)
        except RunInterrupted as stopped:
            # The prior run is what resumes (it knows the samples still to refine), not the sub-run.
            record["status"] = "interrupted"
            write_record(folder, record)
            raise RunInterrupted(folder, stopped.step) from None
        image_path = Path(read_record(sub)["files"]["image"])
        with atomic_path(best) as tmp:
            shutil.copyfile(image_path, tmp)
        with Image.open(image_path) as im:
            score = rank_scores(ranker, [im.convert("RGB")], plan.inputs.prompts)[0]
        kept.update(image=str(best), run=str(sub), score_after=score)
        results.append(result)
    # The keys every finished run.json has, so batch's contact sheet and skips read it alike.
    best = max(record["kept"], key=lambda kept: kept["score_after"])
    record.update(status="finished", seed=settings.seed, final_similarity=best["score_after"], best=best["rank"],
                  files={"image": best["image"], "candidates": str(folder / "candidates.png"),
                         "index": str(folder / "index.html")},
                  seconds=round(record.get("seconds", 0.0) + time.perf_counter() - started, 3))
    run_json = write_record(folder, record)
    return _result(plan, folder, record, run_json, results[0] if results else None, perceptor, started)


def _refine_one(plan: RunPlan, folder: Path, sub: Path, tokens: torch.Tensor, callbacks: list,
                perceptor: Perceptor) -> Result | None:
    if is_finished(sub):
        return None
    if (sub / "state.pt").is_file():
        return resume_run(sub, callbacks=callbacks, steps=plan.settings.steps, device=plan.settings.device)
    single = replace(plan.with_settings(out=str(folder), candidates=1, keep=1),
                     inputs=replace(plan.inputs, start_tokens=tokens))
    return run_single(single, callbacks=callbacks, perceptor=perceptor, folder_name=sub.name)


def _result(plan: RunPlan, folder: Path, record: dict, run_json: Path, first: Result | None,
            perceptor: Perceptor, started: float) -> Result:
    """The run's result: the kept image the ranking CLIP scores best after refinement, with
    the first refinement's history and frames."""
    best = max(record["kept"], key=lambda kept: kept["score_after"])
    with Image.open(best["image"]) as im:
        image = im.convert("RGB")
    paths = {"folder": folder, "image": Path(best["image"]), "candidates": folder / "candidates.png",
             "index": folder / "index.html", "frames": [], "run_json": run_json}
    if first is not None:
        paths.update({k: v for k, v in first.paths.items() if k in ("frames", "video", "gif")})
        initial, final, history = first.initial_similarity, first.final_similarity, first.history
    else:
        initial = final = rank_scores(perceptor, [image], plan.inputs.prompts)[0]
        history = []
    return Result(image=image, paths=paths, history=history, settings=plan.settings, initial_similarity=initial,
                  final_similarity=final, seconds=time.perf_counter() - started, peak_rss_mb=peak_rss_mb(),
                  extra={"candidates": record["candidates"], "kept": record["kept"], "prior": record["prior"]})


def _write_candidates(folder: Path, images: list, scores: list[float], ranked: list[int], keep: int) -> list[Path]:
    files = []
    (folder / "candidates").mkdir()
    for i, image in enumerate(images):
        files.append(save_png(folder / "candidates" / f"candidate-{i:03d}.png", image))
    save_png(folder / "candidates.png", grid_image(images))
    cards = [Card(f"candidates/{files[i].name}", f"#{n} · candidate {i}", (f"score {scores[i]:.4f}",),
                  highlight=n <= keep) for n, i in enumerate(ranked, start=1)]
    write_cards(folder / "index.html", "clipgen prior candidates", cards)
    return files
