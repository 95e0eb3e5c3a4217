"""One run, top-down: build the session, optimise, write the result.

:func:`execute` reads in three parts: set up the writers (frames, ``run.json``,
checkpoints), run the loop (whose failures become a status), finish (final image, SVG,
video, summary). :func:`run_single` starts a run from its plan; :func:`resume_run`
continues one from its ``state.pt``.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import torch

from clipgen.config.settings import Settings, offline_from_environment
from clipgen.errors import ClipgenError, OutputError
from clipgen.guidance.perceptor import Perceptor
from clipgen.guidance.scoring import held_out_scores, prompt_similarity
from clipgen.hardware import peak_rss_mb
from clipgen.outputs.images import run_metadata, tensor_to_pil
from clipgen.outputs.naming import make_run_dir
from clipgen.outputs.run_record import RunRecord
from clipgen.outputs.writer import RunWriter
from clipgen.run.interrupts import graceful_stop
from clipgen.run.loop import NumericalError, StepState, check_interval, optimize
from clipgen.run.plan import RunPlan, plan_run
from clipgen.run.session import Session, build_session
from clipgen.run.state import Checkpointer, load_state, load_trainable_state, restore_rng

_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class RunInterrupted(Exception):
    """The run stopped on Ctrl-C/SIGTERM after saving its state; ``clipgen resume`` continues it."""

    def __init__(self, folder: Path, step: int):
        super().__init__(f"interrupted at step {step}; resume with: clipgen resume {folder}")
        self.folder, self.step = folder, step


@dataclass
class Result:
    image: Any  # PIL.Image.Image
    paths: dict[str, Any]
    history: list[dict[str, float]]
    settings: Settings
    initial_similarity: float
    final_similarity: float
    seconds: float
    status: str = "finished"
    peak_rss_mb: float = 0.0
    held_out: dict[str, dict[str, float]] = field(default_factory=dict)  # --eval-clip scores, by model
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_loss(self) -> float | None:
        losses = [h["loss"] for h in self.history]
        return min(losses) if losses else None

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "prompt": self.settings.prompt,
            "seed": self.settings.seed,
            "files": {k: ([str(p) for p in v] if isinstance(v, list) else str(v)) for k, v in self.paths.items()},
            "steps": self.settings.steps,
            "seconds": round(self.seconds, 3),
            "best_loss": self.best_loss,
            "initial_similarity": self.initial_similarity,
            "final_similarity": self.final_similarity,
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            **({"held_out": self.held_out} if self.held_out else {}),
        }


class LossHistory:
    """A loop callback keeping the loss of every finished step and the latest state."""

    def __init__(self, start: StepState, losses: list):
        self.last, self.losses = start, list(losses)

    def __call__(self, state: StepState) -> None:
        self.last = state
        if state.loss is not None:
            del self.losses[state.step - 1:]  # a step redone after a numerical rewind replaces its loss
            self.losses.append(state.loss)

    def rewound_to(self, step: int, generator, average=None) -> None:
        """The loop handed back an earlier verified state than the last one callbacks saw."""
        if self.last.step != step:
            self.last = StepState(step, self.last.total, None, generator, average=average)
            del self.losses[step:]


def run_single(plan: RunPlan, callbacks: Iterable = (), perceptor: Perceptor | None = None,
               folder_name: str | None = None, evaluator: Perceptor | None = None) -> Result:
    """One generation from its plan; ``perceptor`` and ``evaluator`` may be shared,
    ``folder_name`` replaces the slug."""
    started = time.perf_counter()
    session = build_session(plan, perceptor, evaluator)
    with torch.no_grad():
        initial_similarity = prompt_similarity(session.perceptor, session.generator(), session.targets)
    # Everything that can fail on bad input has run; only now is anything written.
    folder = make_run_dir(plan.settings.out, folder_name or plan.slug)
    return execute(session, folder, callbacks, 0, [], initial_similarity, started)


def resume_run(folder: str | Path, callbacks: Iterable = (), steps: int | None = None,
               device: str | None = None) -> Result:
    """Continue an interrupted run in ``folder`` from its ``state.pt`` (optionally to more
    steps, or on another device: a GPU run can finish on a CPU)."""
    started = time.perf_counter()
    folder = Path(folder)
    state = load_state(folder)
    settings = Settings.from_dict(state.settings, source=str(folder / "state.pt"))
    settings = replace(settings, steps=steps or settings.steps, device=device or settings.device,
                       offline=settings.offline or offline_from_environment())
    session = build_session(plan_run(settings))
    load_trainable_state(session.generator, state.generator)
    if state.anchor_starts and session.objective.anchor is not None:
        session.objective.anchor = session.objective.anchor.starting_at(state.anchor_starts)
    session.optimizer.load_state_dict(state.optimizer)
    restore_rng(state.rng)
    return execute(session, folder, callbacks, state.step, state.losses, state.initial_similarity, started)


def execute(session: Session, folder: Path, callbacks: Iterable, start_step: int, losses: list,
            initial_similarity: float, started: float) -> Result:
    """Optimise from ``start_step`` writing into ``folder``; shared by run and resume."""
    settings = session.settings
    settings_dict = settings.to_dict()
    writer = RunWriter(folder, session.plan.slug, run_metadata(settings.prompt, settings.seed, settings_dict),
                       settings.save_every, settings.svg_frames)
    writer.adopt_existing_frames(up_to=start_step)
    plan = session.plan
    choices = {"precision": plan.precision, "compile": plan.compile, "start_search": session.start_search}
    record = RunRecord(folder, settings_dict, **{k: v.to_dict() for k, v in choices.items() if v is not None})
    history = LossHistory(StepState(start_step, settings.steps, None, session.generator,
                                    average=session.average), losses)
    every = settings.save_every if settings.checkpoint_every is None else settings.checkpoint_every
    anchor = session.objective.anchor
    checkpoints = Checkpointer(folder, session.generator, session.optimizer, settings_dict, history.losses,
                               initial_similarity, every, anchor.starts if anchor is not None else ())
    scheduled = [c for c in (session.animation, session.story) if c is not None]
    if session.story is not None:
        session.story.apply(start_step + 1)

    status = _optimize(session, folder, [history, writer, *scheduled, *callbacks, checkpoints],
                       start_step, history, checkpoints, check_interval(session.device, settings.save_every, every))

    state = history.last
    paths: dict[str, Any] = {"folder": folder, **writer.write_final(state)}
    final_image = state.image()
    final_similarity = prompt_similarity(session.perceptor, final_image, session.targets)
    held_out = score_held_out(session, final_image)
    if status == "finished":
        paths.update(writer.write_animations(settings.video, settings.gif, settings.fps))
    paths["frames"] = list(writer.frames)
    paths["run_json"] = record.path
    values = [float(v) for v in history.losses]
    result = Result(image=tensor_to_pil(final_image), paths=paths,
                    history=[{"step": i + 1, "loss": v} for i, v in enumerate(values)], settings=settings,
                    initial_similarity=initial_similarity, final_similarity=final_similarity,
                    seconds=time.perf_counter() - started, status=status, peak_rss_mb=peak_rss_mb(),
                    held_out=held_out)
    record.complete(**result.summary(), steps_done=state.step, history=values)
    if status == "interrupted":
        raise RunInterrupted(folder, state.step)
    if status == "failed":
        raise NumericalError(f"the loss kept becoming NaN/inf near step {state.step + 1}; the last good "
                             f"image is {paths['image']}; try a smaller --lr")
    return result


def score_held_out(session: Session, image: torch.Tensor) -> dict[str, dict[str, float]]:
    """The ``--eval-clip`` models' scores of the written image (empty without any)."""
    if session.evaluator is None:
        return {}
    settings, inputs = session.settings, session.plan.inputs
    prompts = inputs.prompts or tuple(segment.prompt for segment in inputs.story[-1:])
    if not any(p.weight > 0 for p in prompts):
        return {}
    return held_out_scores(session.evaluator, image, prompts, settings.eval_views, settings.augment,
                           settings.cut_pow, seed=settings.seed)


def _optimize(session: Session, folder: Path, callbacks: list, start_step: int, history: LossHistory,
              checkpoints: Checkpointer, check_every: int) -> str:
    """Run the loop; returns finished, interrupted or failed. Out of memory and a full disk
    save what they can and become one-line errors."""
    settings = session.settings
    try:
        with graceful_stop(callbacks) as stop:
            step = optimize(session.generator, session.objective, session.optimizer, settings.steps,
                            callbacks=callbacks, start_step=start_step, should_stop=stop, check_every=check_every,
                            average=session.average)
        history.rewound_to(step, session.generator, session.average)
        if step < settings.steps:
            checkpoints.save(step)
            return "interrupted"
        return "finished"
    except NumericalError:
        return "failed"
    except _OUT_OF_MEMORY:
        checkpoints.save(history.last.step)
        raise ClipgenError(
            f"out of device memory at step {history.last.step + 1}; lower --size or --cutn (state saved: "
            f"clipgen resume {folder} after changing nothing, or start again smaller)") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"disk full while writing into {folder}; frames so far are intact — free "
                              f"space, then: clipgen resume {folder}") from None
        raise
