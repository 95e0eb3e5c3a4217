"""A run's plan: everything settled before any model is loaded.

:func:`plan_run` runs every check that needs no model (values, files, names, the output
folder, the device, the memory estimate), draws the seed if none was given, resolves the
precision, and reads the inputs from disk exactly once: prompts parsed, story segments
parsed, image prompts, init image and mask loaded. Everything below receives the plan
and never changes it; candidates share one plan's inputs and differ only in seed and
folder.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from clipgen.config.settings import Settings
from clipgen.errors import PromptError, SettingsError
from clipgen.generators import get_generator_class
from clipgen.generators.base import EncodesImages, FrozenModels, RandomStarts, StartsFromPrior
from clipgen.guidance.clip_specs import ClipSpec, clip_input_size, parse_clip_spec
from clipgen.guidance.augmentations import check_augmentations
from clipgen.guidance.cutouts import CutPhase, parse_cut_schedule
from clipgen.guidance.prompts import Prompt, parse_image_prompt, parse_prompts
from clipgen.hardware import PrecisionChoice, check_fits, choose_precision, estimate_bytes, resolve_device
from clipgen.inputs import load_image
from clipgen.outputs.naming import check_writable, slugify
from clipgen.priors.base import PriorStart
from clipgen.run.animate import check_animation
from clipgen.run.compiling import CompileChoice, choose_compile, ledger_key, read_record
from clipgen.run.story import Segment, parse_story
from clipgen.weights import cache_dir


@dataclass(frozen=True)
class RunInputs:
    """What the run reads from disk and parses, once."""

    prompts: tuple[Prompt, ...]
    image_prompts: tuple[tuple[Any, float], ...]  # (PIL image, weight)
    story: tuple[Segment, ...]
    init_image: Any = None  # PIL image
    mask: Any = None  # PIL image
    clip: tuple[ClipSpec, ...] = ()
    rank_clip: tuple[ClipSpec, ...] = ()
    start_tokens: Any = None  # (h, w) token grid a prior wrote (a kept sample being refined)
    cut_phases: tuple[CutPhase, ...] = ()
    eval_clip: tuple[ClipSpec, ...] = ()


@dataclass(frozen=True)
class RunPlan:
    settings: Settings  # final: seed drawn, offline folded in
    device: torch.device
    dtype: torch.dtype  # the frozen models' precision
    inputs: RunInputs
    precision: PrecisionChoice | None = None  # how dtype was chosen (run.json)
    compile: CompileChoice | None = None  # whether the CLIP towers are compiled, and why
    kept: FrozenModels | None = None  # decoders a batch worker keeps loaded from prompt to prompt

    @property
    def compiles(self) -> bool:
        return self.compile.compile if self.compile is not None else self.settings.compile == "on"

    @property
    def slug(self) -> str:
        """The name of the run's folder and files: a safe slug of the prompt (or image prompt)."""
        if self.settings.prompt:
            return slugify(self.settings.prompt)
        if self.inputs.story:
            return slugify(self.inputs.story[0].prompt.text)
        return slugify(Path(self.settings.image_prompts[0]).stem)

    def with_settings(self, **changes: Any) -> "RunPlan":
        return replace(self, settings=replace(self.settings, **changes))


def read_inputs(settings: Settings) -> RunInputs:
    prompts = tuple(parse_prompts(settings.prompt))
    image_prompts = []
    for spec in settings.image_prompts:
        parsed = parse_image_prompt(spec)
        image_prompts.append((load_image(parsed.path, "image prompt"), parsed.weight))
    story = tuple(parse_story(settings.story)) if settings.story else ()
    if not story and not prompts and not image_prompts:
        raise PromptError("empty prompt; give a text prompt or --image-prompt PATH")
    init_image = load_image(settings.init_image, "init image") if settings.init_image else None
    if settings.mask and init_image is None:
        raise SettingsError("--mask needs --init-image: the mask marks which part of that image to change")
    mask = load_image(settings.mask, "mask") if settings.mask else None
    return RunInputs(prompts, tuple(image_prompts), story, init_image, mask,
                     clip=tuple(parse_clip_spec(s) for s in settings.clip),
                     rank_clip=tuple(parse_clip_spec(s) for s in settings.rank_clip),
                     cut_phases=parse_cut_schedule(settings.cut_schedule),
                     eval_clip=tuple(parse_clip_spec(s) for s in settings.eval_clip))


def check_settings(settings: Settings) -> None:
    """The rules that span several settings (each setting's own range is checked when it is built)."""
    check_augmentations(settings.augment)
    if (settings.video or settings.gif) and settings.save_every == 0:
        raise SettingsError("--video/--gif need frames; set --save-every N (N > 0)")
    check_animation(settings, get_generator_class(settings.generator))
    from_prior = prior_start(settings) is not None
    if settings.steps == 0 and not from_prior:
        raise SettingsError("--steps 0 leaves nothing to do without a prior start; give --steps N, or start "
                            "from a prior (--set vqgan.init=prior, e.g. --preset toy-dalle)")
    if from_prior and settings.keep > settings.candidates:
        raise SettingsError(f"--keep {settings.keep} is more than --candidates {settings.candidates} prior samples")
    if from_prior and (settings.init_image or settings.story):
        raise SettingsError("a prior start cannot be combined with --init-image or --story; drop one of them")
    if settings.init_mix > max(settings.init_search, 1):
        raise SettingsError(f"init_mix {settings.init_mix} mixes more starts than --init-search "
                            f"{settings.init_search} draws; set --init-search to at least {settings.init_mix}")
    if settings.init_search:
        if not issubclass(get_generator_class(settings.generator), RandomStarts):
            raise SettingsError(f"generator {settings.generator!r} cannot draw random starts, so --init-search "
                                "does not apply to it; drop --init-search")
        if settings.init_search_shapes and not issubclass(get_generator_class(settings.generator), EncodesImages):
            raise SettingsError(f"generator {settings.generator!r} cannot start from an image, so it cannot draw "
                                "shape starts; drop init_search_shapes")
    guiding = {parse_clip_spec(s).label for s in settings.clip}
    for spec in settings.eval_clip:
        if parse_clip_spec(spec).label in guiding:
            raise SettingsError(f"--eval-clip {spec} also guides this run, so its score is not held out; "
                                "name a model that is not in --clip")
    if settings.candidates > 1:
        if settings.keep > settings.candidates:
            raise SettingsError(f"--keep {settings.keep} is more than --candidates {settings.candidates}")
        if not settings.prompt:
            raise SettingsError("ranking candidates needs a text prompt")


def prior_start(settings: Settings) -> PriorStart | None:
    """What the run's start tokens are sampled from, or None for the generator's own start."""
    return settings.options.prior_start() if isinstance(settings.options, StartsFromPrior) else None


def estimate_peak(settings: Settings, clip: tuple[ClipSpec, ...], dtype: torch.dtype) -> int:
    """The one memory estimate: ``--dry-run`` prints it, :func:`plan_run` refuses runs over it."""
    return estimate_bytes(settings.width, settings.height, settings.cutn,
                          tuple(clip_input_size(spec) for spec in clip),
                          get_generator_class(settings.generator).memory_factor,
                          cut_batch=settings.cut_batch, dtype=dtype)


def plan_run(settings: Settings) -> RunPlan:
    """Check everything that needs no model, settle the seed and precision, read the inputs."""
    check_settings(settings)
    inputs = read_inputs(settings)
    check_writable(settings.out)
    device = resolve_device(settings.device)
    precision = choose_precision(settings.precision, device, probe_cache())
    check_fits(settings.width, settings.height, settings.cutn, device,
               estimate_peak(settings, inputs.clip, precision.dtype))
    if settings.seed is None:
        settings = replace(settings, seed=random.SystemRandom().randrange(2**31))
    if settings.init_search and (settings.init_image or prior_start(settings) is not None):
        # The init image or the prior's best sample is the start: there is no random start to
        # search for (a preset's init_search must not make --init-image an error).
        settings = replace(settings, init_search=0, init_mix=0)
    compiling = compile_choice(settings, inputs.clip, device, precision.dtype)
    return RunPlan(settings, device, precision.dtype, inputs, precision, compiling)


def compile_key(settings: Settings, clip: tuple[ClipSpec, ...], device: torch.device, dtype: torch.dtype) -> str:
    """Which compile measurements apply: the CLIP models and how many cutouts a forward takes."""
    per_forward = min(settings.cutn, settings.cut_batch) if settings.cut_batch else settings.cutn
    return ledger_key(tuple(spec.label for spec in clip), per_forward, dtype, device)


def compile_choice(settings: Settings, clip: tuple[ClipSpec, ...], device: torch.device,
                   dtype: torch.dtype) -> CompileChoice:
    """``--compile`` for this run: as given, or (``auto``) by the bench's measurements here."""
    record = read_record(probe_cache(), compile_key(settings, clip, device, dtype))
    return choose_compile(settings.compile, settings.steps, record)


def probe_cache() -> Path:
    """Where this machine's measurements live (the precision probe, compile records):
    beside the weights cache."""
    return cache_dir() / "probes"
