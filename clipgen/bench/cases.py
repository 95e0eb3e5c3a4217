"""`clipgen bench`: a fixed configuration, timed per stage, with random-weight models of
the true architectures (nothing to download)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from clipgen.bench import random_models
from clipgen.bench.prior import PRIOR_CASES, PriorCase, run_prior_bench
from clipgen.bench.roofline import count_flops, measure_peaks, profile_step, roofline, roofline_precisions
from clipgen.bench.timer import StepClock
from clipgen.config.settings import resolve_run_settings
from clipgen.errors import SettingsError, did_you_mean
from clipgen.hardware import peak_rss_mb, precision_name
from clipgen.outputs.images import png_bytes, tensor_to_pil
from clipgen.run.loop import StepState, check_interval, optimize
from clipgen.run.compiling import record_measurement
from clipgen.run.plan import compile_key, plan_run, probe_cache
from clipgen.run.session import build_session


@dataclass(frozen=True)
class BenchCase:
    description: str
    generator: str
    size: int
    cutn: int
    clip: tuple[str, ...] = ("ViT-B-32:none",)
    options: dict = field(default_factory=dict)
    weights: str | None = None  # which random_* factory writes the generator's files
    flags: dict = field(default_factory=dict)  # further settings, as a preset would give them


CASES: dict[str, BenchCase | PriorCase] = {
    "vqgan-256-cut32": BenchCase("VQGAN f16-16384 + ViT-B-32, 256², 32 cutouts (CPU)", "vqgan", 256, 32,
                                 weights="vqgan"),
    "vqgan-512-cut64": BenchCase("VQGAN f16-16384 + ViT-B-32, 512², 64 cutouts (GPU)", "vqgan", 512, 64,
                                 weights="vqgan"),
    "dvae-256-cut32": BenchCase("DALL-E dVAE decoder + ViT-B-32, 256², 32 cutouts", "dvae", 256, 32,
                                weights="dvae"),
    "biggan-256-cut32": BenchCase("BigGAN-deep-256 + ViT-B-32, 256², 32 cutouts", "biggan", 256, 32,
                                  weights="biggan"),
    "clipdraw-224-cut8": BenchCase("CLIPDraw 256 strokes + ViT-B-32, 224², 8 cutouts", "clipdraw", 224, 8,
                                   options={"strokes": 256}),
    "fourier-256-cut32": BenchCase("Fourier + ViT-B-32, 256², 32 cutouts", "fourier", 256, 32),
    "pixels-256-cut32": BenchCase("Pixels + ViT-B-32, 256², 32 cutouts", "pixels", 256, 32),
    # The offline quickstart's step (presets/toy.toml): one closed shape, both shipped toy CLIPs.
    "toy-64-cut16": BenchCase("The toy preset's step: 1 CLIPDraw shape + toy + toy-vit, 64², 16 cutouts",
                              "clipdraw", 64, 16, clip=("toy", "toy-vit"),
                              options={"strokes": 1, "segments": 4, "radius": 0.2, "closed": True, "opacity": False,
                                       "learn_background": True, "samples": 8},
                              flags={"augment": ["affine", "noise"], "offline": True}),
    **PRIOR_CASES,  # seconds per token-grid sample, not per optimisation step (bench/prior.py)
}

STAGES = ("generator", "cutouts", "clip", "backward", "optimizer", "callbacks")


def write_random_weights(kind: str, folder: Path) -> dict:
    """Random weights of the real ``kind`` architecture (vqgan, dvae, biggan) in its real file
    format under ``folder``; returns the generator's options that point at them."""
    return {"vqgan": random_models.random_vqgan, "dvae": random_models.random_dvae,
            "biggan": random_models.random_biggan}[kind](folder)


def _frame_encoder(clock: StepClock):
    """A callback encoding the step's image as a PNG, as the frame writer does on a save
    step, less the disk write. It encodes the image the step already rendered: a
    re-render (what ``state.image()`` does) costs one more generator forward, which a run
    pays only once per ``--save-every`` steps, not on every step the bench averages."""
    def encode(state: StepState) -> None:
        if clock.last_image is not None:
            png_bytes(tensor_to_pil(clock.last_image))
    return encode


def run_bench(name: str, steps: int = 5, warmup: int = 1, device: str = "auto", clip: str | None = None,
              size: int | None = None, cutn: int | None = None, precision: str = "auto",
              cut_batch: int | None = None, checkpointing: bool = False, compile: str = "auto",
              with_roofline: bool = False, profile_ops: int = 0) -> dict:
    """Time ``steps`` optimisation steps (after ``warmup``) stage by stage: the steps of
    :func:`clipgen.run.loop.optimize`, the loop a run takes, timed through its callbacks.
    ``with_roofline`` adds the step's FLOPs, this machine's peaks and the efficiency
    (:mod:`clipgen.bench.roofline`), counted after the timed steps; ``profile_ops`` > 0
    adds torch.profiler's table of that many ops by self time, over one more step."""
    if name not in CASES:
        raise SettingsError(f"unknown bench preset {name!r}; {did_you_mean(name, CASES)}")
    if name in PRIOR_CASES:
        loop_only = {"--clip": clip, "--size": size, "--cutn": cutn, "--cut-batch": cut_batch,
                     "--checkpointing": checkpointing or None, "--compile": None if compile == "auto" else compile}
        given = [flag for flag, value in loop_only.items() if value is not None]
        given += ["--roofline"] * with_roofline + ["--profile"] * bool(profile_ops)
        if given:
            raise SettingsError(f"{', '.join(given)} time the optimisation loop; the prior case {name!r} takes "
                                "--steps (timed samples), --warmup, --device and --precision")
        return run_prior_bench(name, samples=steps, warmup=warmup, device=device, precision=precision)
    case = CASES[name]
    with tempfile.TemporaryDirectory() as tmp:
        plan, session = case_session(name, Path(tmp), device=device, clip=clip, size=size, cutn=cutn,
                                     precision=precision, cut_batch=cut_batch, checkpointing=checkpointing,
                                     compile=compile)
        settings = plan.settings
        dev = session.device
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        tally, early_peaks = None, None
        if with_roofline:  # counted and measured before the timed steps too (see roofline())
            tally = count_flops(lambda: one_step(session))
            early_peaks = measure_peaks(tally, roofline_precisions(dev, precision_name(plan.dtype)), dev)
        clock = StepClock(dev, warmup)
        optimize(session.generator, clock.objective(session.objective), session.optimizer, warmup + steps,
                 callbacks=[clock.after_update, _frame_encoder(clock), clock.after_callbacks],
                 check_every=check_interval(dev, settings.save_every, 0))
        elapsed = clock.timer.elapsed()
        peak = (torch.cuda.max_memory_allocated(dev) / 2**20) if dev.type == "cuda" else peak_rss_mb()
        ops = profile_step(lambda: one_step(session), profile_ops) if profile_ops else None
    timed = max(clock.steps, 1)
    result = {
        "preset": name, "description": case.description, "device": str(dev),
        "precision": precision_name(session.perceptor.dtype), "cutn": settings.cutn,
        "cut_batch": settings.cut_batch, "size": settings.width,
        "threads": torch.get_num_threads(), "steps": steps, "steps_per_second": timed / elapsed,
        "seconds_per_step": elapsed / timed, "warmup_seconds": clock.warmup_seconds,
        "stages": clock.per_step(STAGES),
        "peak_memory_mb": peak, "peak_memory_kind": "max allocated (CUDA)" if dev.type == "cuda" else "RSS",
        "compile": plan.compiles,
    }
    if compile != "auto":  # a measurement --compile auto can decide by (run/compiling.py)
        record_measurement(probe_cache(), compile_key(plan.settings, plan.inputs.clip, dev, plan.dtype),
                           compiled=plan.compiles, step_seconds=elapsed / timed,
                           warmup_seconds=clock.warmup_seconds, warmup_steps=warmup)
    if tally is not None:
        result["roofline"] = roofline(tally, elapsed / timed, result["precision"], dev, earlier_peaks=early_peaks)
    if ops is not None:
        result["profile"] = ops
    return result


def case_session(name: str, folder: Path, device: str = "auto", clip: str | None = None, size: int | None = None,
                 cutn: int | None = None, precision: str = "auto", cut_batch: int | None = None,
                 checkpointing: bool = False, compile: str = "auto"):
    """``(plan, session)`` of the loop case ``name``, its random weights written under ``folder``."""
    case = CASES[name]
    options = dict(case.options, **({"checkpointing": True} if checkpointing else {}))
    flags = {
        "prompt": "a lighthouse on a cliff at dusk", "generator": case.generator,
        "clip": [clip] if clip else list(case.clip), "size": [size or case.size] * 2, "cutn": cutn or case.cutn,
        "device": device, "seed": 0, "out": str(folder / "out"), "save_every": 0,
        "precision": precision, "compile": compile, "cut_batch": cut_batch, case.generator: options,
        **case.flags,
    }
    settings = resolve_run_settings(flags=flags)  # a bad value fails here, before any weights are written
    if case.weights:
        weight_files = write_random_weights(case.weights, folder / "weights")
        settings = replace(settings, options=replace(settings.options, **weight_files))
    plan = plan_run(settings)
    return plan, build_session(plan)


def one_step(session) -> None:
    """The arithmetic of one step, for counting: forward, cutouts, CLIP and both backwards."""
    session.generator.zero_grad(set_to_none=True)
    session.objective.loss_and_backward(session.generator())
