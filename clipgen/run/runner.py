"""The entry to a run: plan it (every check that needs no model), then start from a prior,
run one seed, or rank several. ``runner → prior_run/candidates → single``: nothing calls back up."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from clipgen.config.settings import Settings
from clipgen.guidance.perceptor import Perceptor
from clipgen.run.candidates import run_candidates
from clipgen.run.plan import RunPlan, plan_run, prior_start
from clipgen.outputs.run_record import read_record
from clipgen.run.prior_run import resume_prior, run_prior
from clipgen.run.single import Result, resume_run, run_single


def run(settings: Settings, callbacks: Iterable = (), perceptor: Perceptor | None = None,
        folder_name: str | None = None) -> Result:
    """Run one generation with resolved settings. ``perceptor`` may be shared across runs;
    ``folder_name`` replaces the prompt slug as the run folder's name (batch items)."""
    return run_plan(plan_run(settings), callbacks, perceptor, folder_name)


def run_plan(plan: RunPlan, callbacks: Iterable = (), perceptor: Perceptor | None = None,
             folder_name: str | None = None) -> Result:
    """Run a planned generation: prior samples ranked and refined, one seed, or several seeds
    ranked by CLIP."""
    if prior_start(plan.settings) is not None:
        return run_prior(plan, callbacks, perceptor, folder_name)
    if plan.settings.candidates > 1:
        return run_candidates(plan, callbacks=callbacks, perceptor=perceptor, folder_name=folder_name)
    return run_single(plan, callbacks=callbacks, perceptor=perceptor, folder_name=folder_name)


def is_prior_run(folder: str | Path) -> bool:
    record = read_record(Path(folder))
    return bool(record) and record.get("kind") == "prior"


def resume(folder: str | Path, callbacks: Iterable = (), steps: int | None = None,
           device: str | None = None) -> Result:
    """Continue an interrupted run: a single run from its ``state.pt``, a prior run from its
    ``run.json`` (finished refinements kept, the others resumed or started); ``device``
    moves it (a GPU run finished on a CPU, say)."""
    if is_prior_run(folder):
        return resume_prior(Path(folder), callbacks=callbacks, steps=steps, device=device)
    return resume_run(folder, callbacks=callbacks, steps=steps, device=device)
