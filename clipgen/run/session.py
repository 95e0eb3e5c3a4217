"""Building a run: validate inputs, load models, make the generator and objective.

Nothing here writes files: every error a user can cause is raised before the run's
output folder exists.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace
from typing import Any

import torch

from clipgen.errors import PromptError, SettingsError
from clipgen.config.settings import Settings


@dataclass
class Session:
    settings: Settings
    device: torch.device
    perceptor: Any
    generator: Any
    objective: Any
    optimizer: torch.optim.Optimizer
    targets: list
    story: Any = None  # a StorySchedule, for prompt schedules
    animation: Any = None  # a FrameTransform, for zoom/pan/rotate


def env_offline() -> bool:
    """CLIPGEN_OFFLINE=1 (or HF_HUB_OFFLINE=1) means: never touch the network."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("CLIPGEN_OFFLINE", "HF_HUB_OFFLINE"))


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def compute_dtype(settings: Settings, device: torch.device) -> torch.dtype:
    from clipgen.hardware import resolve_precision

    return resolve_precision(settings.precision, device)


def load_run_perceptor(settings: Settings, device: torch.device):
    """The run's CLIP ensemble in the run's precision (compiled if asked)."""
    from clipgen.guidance.perceptor import load_perceptor

    perceptor = load_perceptor(settings.clip, device, offline=settings.offline,
                               dtype=compute_dtype(settings, device))
    if settings.compile == "on":
        for model in perceptor.models:
            model.compile_image_tower()
    return perceptor


def check_inputs(settings: Settings):
    """Checks that need no model: prompts, files, names, output folder, device. Returns
    ``(settings with seed/offline resolved, device, prompts, image prompts, init image)``."""
    from clipgen.guidance.cutouts import check_augmentations
    from clipgen.hardware import resolve_device
    from clipgen.generators import get_generator_class
    from clipgen.inputs import load_image
    from clipgen.outputs.naming import check_writable
    from clipgen.guidance.prompts import parse_image_prompt, parse_prompts

    prompts = parse_prompts(settings.prompt)
    image_prompts = []
    for spec in settings.image_prompts:
        parsed = parse_image_prompt(spec)
        image_prompts.append((load_image(parsed.path, "image prompt"), parsed.weight))
    if settings.story:
        from clipgen.run.story import parse_story

        parse_story(settings.story)
    elif not prompts and not image_prompts:
        raise PromptError("empty prompt; give a text prompt or --image-prompt PATH")
    check_augmentations(settings.augment)
    if (settings.video or settings.gif) and settings.save_every == 0:
        raise SettingsError("--video/--gif need frames; set --save-every N (N > 0)")
    from clipgen.run.animate import check_animation

    generator_cls = get_generator_class(settings.generator)
    generator_cls.check_size(settings.width, settings.height, settings.options)
    check_animation(settings, generator_cls)
    init_image = load_image(settings.init_image, "init image") if settings.init_image else None
    if settings.mask and init_image is None:
        raise SettingsError("--mask needs --init-image: the mask marks which part of that image to change")
    if settings.mask:
        load_image(settings.mask, "mask")
    check_writable(settings.out)
    device = resolve_device(settings.device)
    if settings.seed is None:
        settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
    if not settings.offline and env_offline():
        settings = replace(settings, offline=True)
    return settings, device, prompts, image_prompts, init_image


def build_session(settings: Settings, perceptor=None) -> Session:
    """Everything a run needs, loaded and validated; ``perceptor`` may be shared across runs."""
    from clipgen.guidance.cutouts import Cutouts
    from clipgen.generators import get_generator_class
    from clipgen.generators.base import EncodesImages, GeneratorContext, Regularized
    from clipgen.inputs import resize_to
    from clipgen.run.loop import make_optimizer
    from clipgen.hardware import check_fits
    from clipgen.guidance.objective import Objective, encode_targets
    settings, device, prompts, image_prompts, init_image = check_inputs(settings)
    generator_cls = get_generator_class(settings.generator)
    if perceptor is None:
        perceptor = load_run_perceptor(settings, device)
    dtype = compute_dtype(settings, device)
    check_fits(settings.width, settings.height, settings.cutn, device, perceptor.input_sizes,
               generator_cls.memory_factor, cut_batch=settings.cut_batch, dtype=dtype)

    seed_everything(settings.seed)
    context = GeneratorContext(device=device, offline=settings.offline, steps=settings.steps, dtype=dtype)
    generator = generator_cls((settings.width, settings.height), settings.options, context).to(device)
    # Capabilities of the generator itself, before any mask wrapper hides them.
    regularizer = generator.regularization_loss if isinstance(generator, Regularized) else None
    init_tensor = None
    if init_image is not None:
        init_tensor = resize_to(init_image, settings.size).to(device)
        if isinstance(generator, EncodesImages):
            generator.init_from_image(init_tensor)
        elif settings.init_weight == 0 and not settings.mask:
            raise SettingsError(f"generator {settings.generator!r} cannot start from an image; "
                                "use --init-weight to pull it towards the image instead")
        if settings.mask:
            from clipgen.generators.masked import MaskedGenerator, load_mask

            generator = MaskedGenerator(generator, init_tensor, load_mask(settings.mask, settings.size).to(device))

    story = None
    if settings.story:
        from clipgen.run.story import StorySchedule, parse_story

        segments = parse_story(settings.story)
        per_segment = [encode_targets(perceptor, [seg.prompt], image_prompts) for seg in segments]
        targets = encode_targets(perceptor, prompts, image_prompts) if prompts else per_segment[-1]
    else:
        targets = encode_targets(perceptor, prompts, image_prompts)
    cutouts = Cutouts(settings.cutn, settings.cut_pow, perceptor.input_sizes, settings.augment).to(device)
    objective = Objective(perceptor, cutouts, targets, tv_weight=settings.tv_weight,
                          init_weight=settings.init_weight, init_image=init_tensor, regularizer=regularizer,
                          cut_batch=settings.cut_batch)
    lr = settings.lr if settings.lr is not None else generator_cls.default_lr
    optimizer = make_optimizer(settings.optimizer, generator.param_groups(lr))
    if settings.story:
        story = StorySchedule(objective, segments, per_segment, settings.story_blend)
    animation = None
    from clipgen.run.animate import FrameTransform, wants_animation

    if wants_animation(settings):
        animation = FrameTransform(generator, optimizer, settings.save_every, settings.zoom, settings.pan,
                                   settings.rotate)
    return Session(settings, device, perceptor, generator, objective, optimizer, targets, story, animation)
