"""The Python API, which the CLI itself calls: ``clipgen.generate(prompt, **settings)``."""

from __future__ import annotations

import json
import logging
import random
import resource
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import torch

from clipgen import __version__
from clipgen.errors import PromptError, SettingsError
from clipgen.settings import Settings, resolve_run_settings

log = logging.getLogger("clipgen")


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


@dataclass
class Prepared:
    """Everything a run needs, validated and loaded before anything is written."""

    settings: Settings
    device: torch.device
    prompts: list
    image_prompts: list
    init_image: Any  # PIL image or None


def prepare(settings: Settings) -> Prepared:
    """Validate inputs that can be checked without loading models; raise before writing anything."""
    from clipgen.cutouts import check_augmentations
    from clipgen.devices import resolve_device
    from clipgen.generators import get_generator_class
    from clipgen.inputs import load_image
    from clipgen.outputs.naming import check_writable
    from clipgen.prompts import parse_image_prompt, parse_prompts

    prompts = parse_prompts(settings.prompt)
    image_prompts = []
    for spec in settings.image_prompts:
        parsed = parse_image_prompt(spec)
        image_prompts.append((load_image(parsed.path, "image prompt"), parsed.weight))
    if not prompts and not image_prompts:
        raise PromptError("empty prompt; give a text prompt or --image-prompt PATH")
    check_augmentations(settings.augment)
    if (settings.video or settings.gif) and settings.save_every == 0:
        raise SettingsError("--video/--gif need frames; set --save-every N (N > 0)")
    generator_cls = get_generator_class(settings.generator)
    generator_cls.check_size(settings.width, settings.height, settings.options)
    init_image = load_image(settings.init_image, "init image") if settings.init_image else None
    check_writable(settings.out)
    device = resolve_device(settings.device)
    if settings.seed is None:
        settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
    if not settings.offline and env_offline():
        settings = replace(settings, offline=True)
    return Prepared(settings, device, prompts, image_prompts, init_image)


def env_offline() -> bool:
    """CLIPGEN_OFFLINE=1 (or HF_HUB_OFFLINE=1) means: never touch the network."""
    import os

    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("CLIPGEN_OFFLINE", "HF_HUB_OFFLINE"))


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(settings: Settings, callbacks: Iterable = (), perceptor=None) -> Result:
    """Run one generation with resolved settings. ``perceptor`` may be shared across runs."""
    from clipgen.cutouts import Cutouts
    from clipgen.generators import get_generator_class
    from clipgen.generators.base import EncodesImages, GeneratorContext
    from clipgen.inputs import resize_to
    from clipgen.loop import StepState, make_optimizer, optimize
    from clipgen.objective import Objective, encode_targets, prompt_similarity
    from clipgen.outputs.atomic import write_text
    from clipgen.outputs.images import run_metadata, tensor_to_pil
    from clipgen.outputs.naming import make_run_dir, slugify
    from clipgen.outputs.writer import RunWriter
    from clipgen.perceptor import load_perceptor

    started = time.perf_counter()
    prepared = prepare(settings)
    settings, device = prepared.settings, prepared.device
    if perceptor is None:
        perceptor = load_perceptor(settings.clip, device, offline=settings.offline)

    seed_everything(settings.seed)
    generator_cls = get_generator_class(settings.generator)
    context = GeneratorContext(device=device, offline=settings.offline)
    generator = generator_cls((settings.width, settings.height), settings.options, context).to(device)
    init_tensor = None
    if prepared.init_image is not None:
        init_tensor = resize_to(prepared.init_image, settings.size).to(device)
        if isinstance(generator, EncodesImages):
            generator.init_from_image(init_tensor)
        elif settings.init_weight == 0:
            raise SettingsError(f"generator {settings.generator!r} cannot start from an image; "
                                "use --init-weight to pull it towards the image instead")

    targets = encode_targets(perceptor, prepared.prompts, prepared.image_prompts)
    cutouts = Cutouts(settings.cutn, settings.cut_pow, perceptor.input_sizes, settings.augment).to(device)
    objective = Objective(perceptor, cutouts, targets, tv_weight=settings.tv_weight,
                          init_weight=settings.init_weight, init_image=init_tensor)
    lr = settings.lr if settings.lr is not None else generator_cls.default_lr
    optimizer = make_optimizer(settings.optimizer, generator.param_groups(lr))

    # Everything that can fail on bad input has run; only now is anything written.
    slug = slugify(settings.prompt or Path(settings.image_prompts[0]).stem)
    folder = make_run_dir(settings.out, slug)
    settings_dict = settings.to_dict()
    metadata = run_metadata(settings.prompt, settings.seed, settings_dict)
    writer = RunWriter(folder, slug, metadata, settings.save_every, settings.svg_frames)
    run_json = folder / "run.json"
    record: dict[str, Any] = {"clipgen": __version__, "status": "running", "settings": settings_dict}
    write_text(run_json, json.dumps(record, indent=2))

    losses: list[torch.Tensor] = []
    last: list[StepState] = []

    def remember(state: StepState) -> None:
        last[:] = [state]
        if state.loss is not None:
            losses.append(state.loss)

    with torch.no_grad():
        initial_similarity = prompt_similarity(perceptor, generator(), targets)
    status = "finished"
    try:
        optimize(generator, objective, optimizer, settings.steps,
                 callbacks=[remember, writer, *callbacks])
    except KeyboardInterrupt:
        status = "interrupted"
    state = last[0] if last else StepState(0, settings.steps, None, generator)
    paths: dict[str, Any] = {"folder": folder, **writer.write_final(state)}
    final_image = state.image()
    final_similarity = prompt_similarity(perceptor, final_image, targets)
    if status == "finished":
        paths.update(writer.write_animations(settings.video, settings.gif, settings.fps))
    paths["frames"] = list(writer.frames)
    paths["run_json"] = run_json
    history = [{"step": i + 1, "loss": v} for i, v in enumerate(torch.stack(losses).tolist())] if losses else []
    result = Result(
        image=tensor_to_pil(final_image), paths=paths, history=history, settings=settings,
        initial_similarity=initial_similarity, final_similarity=final_similarity,
        seconds=time.perf_counter() - started, status=status, peak_rss_mb=peak_rss_mb(),
    )
    record.update(result.summary(), steps_done=state.step, history=[h["loss"] for h in history])
    write_text(run_json, json.dumps(record, indent=2))
    if status == "interrupted":
        log.warning("interrupted at step %d; the last image is in %s", state.step, paths["image"])
        raise KeyboardInterrupt
    return result
