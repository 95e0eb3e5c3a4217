"""The Python API, which the CLI itself calls: ``clipgen.generate(prompt, **settings)``,
``clipgen.api.resume(folder)``."""

from __future__ import annotations

import errno
import json
import math
import logging
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import torch

from clipgen import __version__
from clipgen.errors import ClipgenError, OutputError
from clipgen.run.session import Session, build_session
from clipgen.config.settings import Settings, resolve_run_settings

log = logging.getLogger("clipgen")
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
        }


def generate(prompt: str | None = None, *, preset: str | None = None, set: list[str] | None = None,
             callbacks: Iterable = (), **settings: Any) -> Result:
    """Generate an image for ``prompt``. Keyword arguments are settings (see ``Settings``);
    a generator's options go in a dict named after it, e.g. ``fourier={"decay": 1.5}``."""
    flags = dict(settings)
    if prompt is not None:
        flags["prompt"] = prompt
    return run(resolve_run_settings(preset=preset, flags=flags, assignments=set), callbacks=callbacks)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_slug(settings: Settings) -> str:
    """The name of a run's folder and files: a safe slug of the prompt (or image prompt)."""
    from clipgen.outputs.naming import slugify

    if settings.prompt:
        return slugify(settings.prompt)
    if settings.story:
        from clipgen.run.story import parse_story

        return slugify(parse_story(settings.story)[0].prompt.text)
    return slugify(Path(settings.image_prompts[0]).stem)


def run(settings: Settings, callbacks: Iterable = (), perceptor=None, folder_name: str | None = None) -> Result:
    """Run one generation with resolved settings. ``perceptor`` may be shared across runs;
    ``folder_name`` replaces the prompt slug as the run folder's name (batch items)."""
    from clipgen.guidance.objective import prompt_similarity
    from clipgen.outputs.naming import make_run_dir

    if settings.candidates > 1:
        from clipgen.run.candidates import run_candidates

        return run_candidates(settings, callbacks=callbacks, perceptor=perceptor)
    started = time.perf_counter()
    session = build_session(settings, perceptor)
    settings = session.settings
    with torch.no_grad():
        initial_similarity = prompt_similarity(session.perceptor, session.generator(), session.targets)
    # Everything that can fail on bad input has run; only now is anything written.
    folder = make_run_dir(settings.out, folder_name or run_slug(settings))
    return execute(session, folder, callbacks, start_step=0, losses=[],
                   initial_similarity=initial_similarity, started=started)


def resume(folder: str | Path, callbacks: Iterable = (), steps: int | None = None) -> Result:
    """Continue an interrupted run in ``folder`` from its ``state.pt`` (optionally to more steps)."""
    from clipgen.run.state import load_state, load_trainable_state, restore_rng

    started = time.perf_counter()
    folder = Path(folder)
    state = load_state(folder)
    settings = Settings.from_dict(state.settings, source=str(folder / "state.pt"))
    if steps is not None:
        settings = replace(settings, steps=steps)
    session = build_session(settings)
    load_trainable_state(session.generator, state.generator)
    session.optimizer.load_state_dict(state.optimizer)
    restore_rng(state.rng)
    return execute(session, folder, callbacks, start_step=state.step, losses=state.losses,
                   initial_similarity=state.initial_similarity, started=started)


def _checkpoint(session: Session, folder: Path, step: int, losses: list, initial_similarity: float) -> None:
    from clipgen.run.state import RunState, capture_rng, save_state, trainable_state

    history = [float(v) for v in losses]
    save_state(folder, RunState(step=step, generator=trainable_state(session.generator),
                                optimizer=session.optimizer.state_dict(), rng=capture_rng(),
                                losses=history, settings=session.settings.to_dict(),
                                initial_similarity=initial_similarity))


def check_interval(device, save_every: int, checkpoint_every: int) -> int:
    """How often the loop reads its finiteness flag: every step where that is free (CPU);
    on a GPU every few steps, on a step where frames and checkpoints fall anyway."""
    if device.type != "cuda":
        return 1
    return math.gcd(10, save_every or 10, checkpoint_every or 10)


def execute(session: Session, folder: Path, callbacks: Iterable, start_step: int, losses: list,
            initial_similarity: float, started: float) -> Result:
    """Optimise from ``start_step`` writing into ``folder``; shared by run() and resume()."""
    from clipgen.run.interrupts import graceful_stop
    from clipgen.run.loop import NumericalError, StepState, optimize
    from clipgen.guidance.objective import prompt_similarity
    from clipgen.atomic import write_text
    from clipgen.outputs.images import run_metadata, tensor_to_pil
    from clipgen.outputs.writer import RunWriter

    settings = session.settings
    settings_dict = settings.to_dict()
    writer = RunWriter(folder, run_slug(settings), run_metadata(settings.prompt, settings.seed, settings_dict),
                       settings.save_every, settings.svg_frames)
    writer.adopt_existing_frames(up_to=start_step)
    run_json = folder / "run.json"
    record: dict[str, Any] = {"clipgen": __version__, "status": "running", "settings": settings_dict}
    write_text(run_json, json.dumps(record, indent=2))
    losses = list(losses)
    last = [StepState(start_step, settings.steps, None, session.generator)]
    every = settings.save_every if settings.checkpoint_every is None else settings.checkpoint_every

    def remember(state: StepState) -> None:
        last[0] = state
        if state.loss is not None:
            del losses[state.step - 1:]  # a step redone after a numerical rewind replaces its loss
            losses.append(state.loss)

    def checkpoint(state: StepState) -> None:
        # Last callback of the step, so the RNG state it saves is exactly the one the
        # next step starts from, whatever the other callbacks drew.
        if every and state.step and state.step % every == 0:
            _checkpoint(session, folder, state.step, losses, initial_similarity)

    scheduled = [c for c in (session.animation, session.story) if c is not None]
    if session.story is not None:
        session.story.apply(start_step + 1)
    status = "finished"
    try:
        with graceful_stop() as stop:
            step = optimize(session.generator, session.objective, session.optimizer, settings.steps,
                            callbacks=[remember, writer, *scheduled, *callbacks, checkpoint],
                            start_step=start_step, should_stop=stop,
                            check_every=check_interval(session.device, settings.save_every, every))
        if last[0].step != step:  # rewound past the last callback's state
            last[0] = StepState(step, settings.steps, None, session.generator)
            del losses[step:]
        if step < settings.steps:
            status = "interrupted"
            _checkpoint(session, folder, step, losses, initial_similarity)
    except NumericalError:
        status = "failed"
    except _OUT_OF_MEMORY:
        _checkpoint(session, folder, last[0].step, losses, initial_similarity)
        raise ClipgenError(
            f"out of device memory at step {last[0].step + 1}; lower --size or --cutn (state saved: "
            f"clipgen resume {folder} after changing nothing, or start again smaller)") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise OutputError(f"disk full while writing into {folder}; frames so far are intact — free "
                              f"space, then: clipgen resume {folder}") from None
        raise

    state = last[0]
    paths: dict[str, Any] = {"folder": folder, **writer.write_final(state)}
    final_image = state.image()
    final_similarity = prompt_similarity(session.perceptor, final_image, session.targets)
    if status == "finished":
        paths.update(writer.write_animations(settings.video, settings.gif, settings.fps))
    paths["frames"] = list(writer.frames)
    paths["run_json"] = run_json
    values = [float(v) for v in losses]
    history = [{"step": i + 1, "loss": v} for i, v in enumerate(values)]
    result = Result(
        image=tensor_to_pil(final_image), paths=paths, history=history, settings=settings,
        initial_similarity=initial_similarity, final_similarity=final_similarity,
        seconds=time.perf_counter() - started, status=status, peak_rss_mb=peak_rss_mb(),
    )
    record.update(result.summary(), steps_done=state.step, history=values)
    write_text(run_json, json.dumps(record, indent=2))
    if status == "interrupted":
        raise RunInterrupted(folder, state.step)
    if status == "failed":
        raise NumericalError(f"the loss kept becoming NaN/inf near step {state.step + 1}; the last good "
                             f"image is {paths['image']}; try a smaller --lr")
    return result
