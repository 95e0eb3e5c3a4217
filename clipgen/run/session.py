"""Building a run from its plan: load CLIP, make the generator, encode the targets.

Nothing here writes files or checks user input: :func:`clipgen.run.plan.plan_run` has
done every check that needs no model, so what can still fail here is a model itself.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch

from clipgen.errors import SettingsError
from clipgen.generators import get_generator_class
from clipgen.generators.base import EncodesImages, Generator, GeneratorContext, Regularized
from clipgen.generators.masked import mask_generator
from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.objective import LatentAnchor, Objective, Targets, encode_targets
from clipgen.guidance.perceptor import Perceptor, load_perceptor
from clipgen.inputs import mask_to_tensor, resize_to
from clipgen.run.animate import FrameTransform, wants_animation
from clipgen.run.averaging import ParameterAverage
from clipgen.run.loop import make_optimizer
from clipgen.run.plan import RunPlan
from clipgen.run.starts import StartSearch, search_start
from clipgen.run.story import StorySchedule


@dataclass
class Session:
    plan: RunPlan
    perceptor: Perceptor
    generator: Generator
    objective: Objective
    optimizer: torch.optim.Optimizer
    targets: list[Targets]
    story: StorySchedule | None = None  # prompt schedules
    animation: FrameTransform | None = None  # zoom/pan/rotate
    average: ParameterAverage | None = None  # --ema: what frames and the final image show
    start_search: StartSearch | None = None  # --init-search: how the start was chosen
    evaluator: Perceptor | None = None  # --eval-clip: held-out models that score the result

    @property
    def settings(self):
        return self.plan.settings

    @property
    def device(self) -> torch.device:
        return self.plan.device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_run_perceptor(plan: RunPlan) -> Perceptor:
    """The run's CLIP ensemble, in the run's precision, compiled if asked.

    open_clip initialises every model randomly before loading its weights; that must not
    move the run's random stream, so a seed gives the same image whenever CLIP is loaded.
    """
    return _load_keeping_rng(plan, plan.inputs.clip, compile=plan.compiles)


def _load_keeping_rng(plan: RunPlan, specs, compile: bool = False) -> Perceptor:
    devices = [plan.device] if plan.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        return load_perceptor(specs, plan.device, offline=plan.settings.offline, dtype=plan.dtype, compile=compile)


def load_evaluator(plan: RunPlan) -> Perceptor | None:
    """The held-out models of ``--eval-clip`` (None without any), loaded like the run's own."""
    return _load_keeping_rng(plan, plan.inputs.eval_clip) if plan.inputs.eval_clip else None


def make_generator(plan: RunPlan) -> Generator:
    """The run's generator with its own start (random, or the model's default)."""
    settings = plan.settings
    context = GeneratorContext(device=plan.device, offline=settings.offline, steps=settings.steps,
                               dtype=plan.dtype, kept=plan.kept)
    return get_generator_class(settings.generator)(settings.size, settings.options, context).to(plan.device)


def _make_generator(plan: RunPlan) -> tuple[Generator, torch.Tensor | None]:
    """The generator (masked if asked), started from the plan's start tokens or init image,
    and the init image as a tensor at the run's size."""
    settings, inputs = plan.settings, plan.inputs
    generator = make_generator(plan)
    if inputs.start_tokens is not None:
        generator.init_from_tokens(inputs.start_tokens)
    if inputs.init_image is None:
        return generator, None
    init = resize_to(inputs.init_image, settings.size).to(plan.device)
    if isinstance(generator, EncodesImages):
        generator.init_from_image(init)
    elif settings.init_weight == 0 and inputs.mask is None:
        raise SettingsError(f"generator {settings.generator!r} cannot start from an image; "
                            "use --init-weight to pull it towards the image instead")
    if inputs.mask is not None:
        generator = mask_generator(generator, init, mask_to_tensor(inputs.mask, settings.size).to(plan.device))
    return generator, init


def build_session(plan: RunPlan, perceptor: Perceptor | None = None,
                  evaluator: Perceptor | None = None) -> Session:
    """Everything a run needs, loaded; ``perceptor`` and ``evaluator`` may be shared across runs."""
    settings, inputs = plan.settings, plan.inputs
    seed_everything(settings.seed)
    # The generator first: it checks its size before it reads any weights, and its weights
    # are local, while CLIP may have to be downloaded.
    generator, init = _make_generator(plan)
    if perceptor is None:
        perceptor = load_run_perceptor(plan)
    if evaluator is None:
        evaluator = load_evaluator(plan)

    per_segment = [encode_targets(perceptor, [seg.prompt], inputs.image_prompts) for seg in inputs.story]
    if inputs.prompts or not per_segment:
        targets = encode_targets(perceptor, inputs.prompts, inputs.image_prompts)
    else:
        targets = per_segment[-1]
    cutouts = Cutouts(settings.cutn, settings.cut_pow, perceptor.input_sizes, settings.augment,
                      resample_dtype=plan.dtype).to(plan.device)
    searched = None
    if settings.init_search:
        searched = search_start(generator, perceptor, cutouts, targets, settings.init_search,
                                settings.init_search_views, settings.seed, mix=settings.init_mix,
                                shapes=settings.init_search_shapes)
    anchor = None
    if settings.latent_l2:
        # Taken after any start search. state.pt keeps it: a resumed refinement rebuilds its
        # generator without the prior tokens it started from.
        anchor = LatentAnchor.at_start((p for p in generator.parameters() if p.requires_grad), settings.latent_l2,
                                       round(settings.latent_l2_decay * settings.steps))
    objective = Objective(perceptor, cutouts, targets, tv_weight=settings.tv_weight,
                          init_weight=settings.init_weight, init_image=init,
                          regularizer=generator.regularization_loss if isinstance(generator, Regularized) else None,
                          cut_batch=settings.cut_batch, anchor=anchor, cut_phases=inputs.cut_phases,
                          steps=settings.steps)
    lr = settings.lr if settings.lr is not None else type(generator).default_lr
    optimizer = make_optimizer(settings.optimizer, generator.param_groups(lr))
    story = StorySchedule(objective, list(inputs.story), per_segment, settings.story_blend) if inputs.story else None
    animation = None
    if wants_animation(settings):
        animation = FrameTransform(generator, optimizer, settings.save_every, settings.zoom, settings.pan,
                                   settings.rotate)
    average = ParameterAverage(optimizer, settings.ema) if settings.ema else None
    return Session(plan, perceptor, generator, objective, optimizer, targets, story, animation, average, searched,
                   evaluator)

