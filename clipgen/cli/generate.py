"""`clipgen generate` and `clipgen resume`.

`generate` has a flag for every setting in :data:`SETTING_FLAGS`; the flag's type, help,
range and choices are read from its :class:`Settings` field, so each is written once, in
settings.py. (settings.py imports no torch; `clipgen --help` builds this module.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import sys
import typing
from typing import Annotated, Optional

import typer

from clipgen.cli.console import stderr_console
from clipgen.config.settings import Settings, resolve_run_settings
from clipgen.config.typed import describe, field_types, unwrap_optional
from clipgen.errors import SettingsError
from clipgen.generators.registry import generator_names

GEN = "Generator"
GUIDE = "Guidance (CLIP)"
OPT = "Optimisation"
OUT = "Output"
CFG = "Settings"
ANIM = "Animation"

#: The settings that are flags, by help panel, in the order help lists them. The other
#: settings are reached through ``--set KEY=VALUE`` and presets.
SETTING_FLAGS: dict[str, tuple[str, ...]] = {
    GEN: ("generator", "size", "init_image", "init_weight", "mask"),
    GUIDE: ("clip", "image_prompts", "cutn", "cut_pow", "cut_schedule", "augment", "tv_weight", "candidates", "keep",
            "rank_clip", "eval_clip"),
    OPT: ("steps", "lr", "optimizer", "seed", "device", "precision", "cut_batch", "compile", "init_search",
          "ema", "latent_l2", "latent_l2_decay"),
    ANIM: ("story", "story_blend", "zoom", "pan", "rotate"),
    OUT: ("out", "save_every", "checkpoint_every", "video", "gif", "fps"),
    CFG: ("offline",),
}
#: Flags not spelled --NAME (or --NAME/--no-NAME for a switch).
SPELLINGS = {"generator": ("--generator", "-g"), "image_prompts": ("--image-prompt",),
             "offline": ("--offline/--online",)}
#: What the command line adds to a setting: it reads story files and takes `--augment none`.
CLI_NOTES = {"story": "or a file of such lines", "augment": "comma-separated; none for no augmentation",
             "generator": "`clipgen generators` describes each"}

#: The generator flags from before ``--set GENERATOR.KEY=VALUE``: flag -> (section.key, type, help).
#: Frozen: a new generator's options reach users through --set and presets, never a flag.
SHORTCUTS: dict[str, tuple[str, type, str]] = {
    "vqgan": ("vqgan.model", str, "VQGAN model name (see `clipgen models list`)."),
    "vqgan_config": ("vqgan.config", str, "Local VQGAN .yaml (with --vqgan-checkpoint)."),
    "vqgan_checkpoint": ("vqgan.checkpoint", str, "Local VQGAN .ckpt (with --vqgan-config)."),
    "biggan": ("biggan.model", str, "BigGAN-deep model name (biggan-deep-128/256/512)."),
    "biggan_dir": ("biggan.model_dir", str, "Local folder with config.json + pytorch_model.bin."),
    "biggan_class": ("biggan.class_name", str, "ImageNet class that starts (or with --set biggan.fix_class=true "
                     "fixes) the search, e.g. 'golden retriever'."),
    "truncation": ("biggan.truncation", float, "BigGAN truncation (0.02-1; lower: more typical)."),
    "trust_checkpoint": ("dvae.trust_checkpoint", bool, "Unpickle a dVAE .pkl that has no pinned SHA-256 "
                         "(only files you trust)."),
}

_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_TYPES = field_types(Settings)


def flag_type(name: str) -> type:
    """The command-line type of setting ``name``: lists repeat; pairs such as 256x256 stay text."""
    tp, _ = unwrap_optional(_TYPES[name])
    if typing.get_origin(tp) is tuple:
        return list[str] if typing.get_args(tp)[1:] == (Ellipsis,) else str
    return tp


def setting_help(name: str) -> str:
    """The help of setting ``name`` as a flag: its field's help, choices and range."""
    notes = (CLI_NOTES[name],) if name in CLI_NOTES else ()
    if flag_type(name) == list[str]:
        notes += ("repeatable",)
    # The registry, not the field, knows the generators (a generator is one registry line).
    choices = generator_names() if name == "generator" else None
    return describe(_FIELDS[name], choices=choices, notes=notes)


def _option(name: str, tp: type, panel: str, help: str, *decls: str) -> inspect.Parameter:
    option = typer.Option(*decls, help=help, rich_help_panel=panel)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[Optional[tp], option])


def _flag_parameters(panel: str) -> list[inspect.Parameter]:
    params = []
    for name in SETTING_FLAGS[panel]:
        tp, dash = flag_type(name), name.replace("_", "-")
        switch = (f"--{dash}/--no-{dash}",) if tp is bool else ()
        params.append(_option(name, tp, panel, setting_help(name), *SPELLINGS.get(name, switch)))
    if panel == GEN:
        params += [_option(name, tp, GEN, help, "--" + name.replace("_", "-"))
                   for name, (_, tp, help) in SHORTCUTS.items()]
    return params


def with_setting_flags(command):
    """``command``, which takes the setting flags and shortcuts as ``**given``, with a typer
    parameter for each: in each help panel the settings first, then the flags ``command``
    declares itself."""
    declared = [p for p in inspect.signature(command, eval_str=True).parameters.values()
                if p.kind is not inspect.Parameter.VAR_KEYWORD]

    def panel_of(param: inspect.Parameter) -> str | None:
        return getattr(typing.get_args(param.annotation)[1], "rich_help_panel", None)

    params = [p for p in declared if panel_of(p) not in SETTING_FLAGS]
    for panel in SETTING_FLAGS:
        params += _flag_parameters(panel) + [p for p in declared if panel_of(p) == panel]
    command.__signature__ = inspect.Signature(params)
    return command


def command_line_layer(given: dict) -> dict:
    """The settings the flags give: each under its setting's name (None where not given, so
    the layers below apply), a shortcut's in its generator's section."""
    flags = {name: given.get(name) for names in SETTING_FLAGS.values() for name in names}
    flags["augment"] = _split_list(flags["augment"])
    for flag, (dotted, _, _) in SHORTCUTS.items():
        if given.get(flag) is not None:
            section, key = dotted.split(".")
            flags.setdefault(section, {})[key] = given[flag]
    return flags


def _split_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    return [] if items == ["none"] else items


@with_setting_flags
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="What to draw: 'a red apple:1.5|blurry:-0.5'.")] = None,
    *,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.",
                                        rich_help_panel=OUT)] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.",
                                               rich_help_panel=OUT)] = False,
    prompt_file: Annotated[Optional[str], typer.Option(help="Read the prompt from a UTF-8 text file.",
                                                       rich_help_panel=CFG)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved settings and a memory "
                                          "estimate, then exit.", rich_help_panel=CFG)] = False,
    preset: Annotated[Optional[str], typer.Option(help="Preset name or .toml path (flags override it).",
                                                  rich_help_panel=CFG)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Any setting as key=value, e.g. --set fourier.decay=1.5 (repeatable).",
        rich_help_panel=CFG)] = None,
    **given,
) -> None:
    """Generate an image for PROMPT."""
    if prompt_file is not None:
        if prompt is not None:
            raise SettingsError("give the prompt either as an argument or with --prompt-file, not both")
        prompt = read_prompt_file(prompt_file)
    flags = {"prompt": prompt, **command_line_layer(given)}
    if flags["story"] is not None:
        flags["story"] = _read_story(flags["story"])
    settings = resolve_run_settings(preset=preset, flags=flags, assignments=set_)
    if dry_run:
        _dry_run(settings)
        return
    from clipgen.api import run

    _run_with_progress(lambda callbacks: run(settings, callbacks=callbacks), quiet, json_summary)


def resume(
    folder: Annotated[str, typer.Argument(help="A run folder (OUT/<slug>) holding state.pt.")],
    steps: Annotated[Optional[int], typer.Option(min=1, help="Run to this many steps in total (default: "
                                                 "the original count).")] = None,
    device: Annotated[Optional[str], typer.Option(help="Continue on this device instead of the run's own "
                                                  "(auto, cpu, cuda, cuda:N or mps).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    json_summary: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Continue an interrupted run from its last saved state."""
    from clipgen.api import resume as resume_run

    _run_with_progress(lambda callbacks: resume_run(folder, callbacks=callbacks, steps=steps, device=device),
                       quiet, json_summary)


def _read_story(value: str) -> str:
    from pathlib import Path

    from clipgen.inputs import read_text_file

    if Path(value).expanduser().is_file():
        lines = read_text_file(value, "story file").splitlines()
        return "|".join(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    return value


def read_prompt_file(path: str) -> str:
    from clipgen.inputs import read_text_file

    text = read_text_file(path, "prompt file")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _dry_run(settings) -> None:
    """The resolved settings and the same memory estimate a real run is refused by."""
    from clipgen.guidance.clip_specs import parse_clip_spec
    from clipgen.hardware import available_bytes, choose_precision, gib, precision_name, resolve_device
    from clipgen.run.plan import compile_choice, estimate_peak, probe_cache

    device = resolve_device(settings.device)
    precision = choose_precision(settings.precision, device, probe_cache())
    dtype = precision.dtype
    clip = tuple(parse_clip_spec(s) for s in settings.clip)
    need = estimate_peak(settings, clip, dtype)
    compiled = compile_choice(settings, clip, device, dtype)
    sys.stdout.write(json.dumps(settings.to_dict(), indent=2) + "\n")
    have = available_bytes(device)
    stderr_console().print(f"estimated peak memory: {gib(need)} (CLIP and generator weights extra) at "
                           f"{precision_name(dtype)} on {device.type}; "
                           f"available: {gib(have) if have else 'unknown'}")
    stderr_console().print(f"precision: {precision_name(dtype)} ({precision.reason})", markup=False)
    stderr_console().print(f"compile: {'on' if compiled.compile else 'off'} ({compiled.reason})", markup=False)
    if precision.probe is not None:
        probe = precision.probe
        stderr_console().print(f"precision probe, GFLOP/s: matmul fp32 {probe.fp32_matmul} / bf16 {probe.bf16_matmul}, "
                               f"conv fp32 {probe.fp32_conv} / bf16 {probe.bf16_conv} ({probe.machine})", markup=False)


@contextlib.contextmanager
def _nothing():
    yield


def _run_with_progress(start, quiet: bool, json_summary: bool) -> None:
    from clipgen.api import RunInterrupted
    from clipgen.cli.progress import ProgressBar

    console = stderr_console()
    progress = None if quiet else ProgressBar(console)
    try:
        with progress or _nothing():
            result = start([progress] if progress else [])
    except RunInterrupted as stopped:
        console.print(f"[yellow]{stopped}[/]")
        raise typer.Exit(130)
    except KeyboardInterrupt:
        console.print("[yellow]stopped at once[/]: the last saved state.pt is intact")
        raise typer.Exit(130)
    if json_summary:
        sys.stdout.write(json.dumps(result.summary(), indent=2) + "\n")
    elif not quiet:
        from clipgen.cli.progress import print_summary

        print_summary(console, result)
