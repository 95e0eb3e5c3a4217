"""The entry to a run: plan it (every check that needs no model), then run one seed or
rank several. ``runner → candidates → single``: nothing calls back up."""

from __future__ import annotations

from typing import Iterable

from clipgen.config.settings import Settings
from clipgen.guidance.perceptor import Perceptor
from clipgen.run.candidates import run_candidates
from clipgen.run.plan import RunPlan, plan_run
from clipgen.run.single import Result, run_single


def run(settings: Settings, callbacks: Iterable = (), perceptor: Perceptor | None = None,
        folder_name: str | None = None) -> Result:
    """Run one generation with resolved settings. ``perceptor`` may be shared across runs;
    ``folder_name`` replaces the prompt slug as the run folder's name (batch items)."""
    return run_plan(plan_run(settings), callbacks, perceptor, folder_name)


def run_plan(plan: RunPlan, callbacks: Iterable = (), perceptor: Perceptor | None = None,
             folder_name: str | None = None) -> Result:
    """Run a planned generation: one seed, or several ranked by CLIP."""
    if plan.settings.candidates > 1:
        return run_candidates(plan, callbacks=callbacks, perceptor=perceptor)
    return run_single(plan, callbacks=callbacks, perceptor=perceptor, folder_name=folder_name)
