"""One typed settings object, resolved once at the edge.

Merge order: dataclass defaults < preset file(s) < command-line flags < ``--set key=value``.
Top-level keys are :class:`Settings` fields; a table/section named after a generator
holds that generator's options (``--set fourier.decay=1.2``), validated against the
generator's own ``Options`` dataclass.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

from clipgen.config.presets import flat_keys, load_preset, merge
from clipgen.config.typed import NoOptions, build, option, to_plain
from clipgen.errors import SettingsError, did_you_mean
from clipgen.generators.registry import generator_names, get_generator_class

OPTIMIZERS = ("adam", "adamw", "sgd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
COMPILE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class Settings:
    prompt: str = option("", help="Text prompt(s): 'a red apple:1.5|blurry:-0.5'")
    generator: str = option("fourier", help="What makes the image")
    clip: tuple[str, ...] = option(("ViT-B-32:openai",), help="CLIP model(s): NAME:TAG like ViT-B-32:openai, "
                                   "a local folder or ARCH:FILE, each optionally @weight")
    size: tuple[int, int] = option((256, 256), help="Image size WxH in pixels, e.g. 256x256", min=8, max=8192)
    steps: int = option(300, help="Optimisation steps (0: only with a prior start: rank the samples, no refinement)",
                        min=0, max=10_000_000)
    lr: float | None = option(None, help="Learning rate (default: the generator's own)", min=0.0)
    optimizer: str = option("adam", help="Optimiser", choices=OPTIMIZERS)
    cutn: int = option(32, help="Cutouts per step", min=1, max=4096)
    cut_pow: float = option(1.0, help="Cutout size exponent (>1: smaller cutouts)", min=0.01, max=100.0)
    augment: tuple[str, ...] = option(("affine", "perspective", "jitter", "noise"), help="Cutout augmentations: "
                                      "affine, perspective, flip, jitter, erasing, sharpness, grayscale, noise")
    seed: int | None = option(None, help="Random seed (default: drawn and recorded)", min=0, max=2**63 - 1)
    device: str = option("auto", help="auto, cpu, cuda, cuda:N or mps")
    precision: str = option("auto", help="Compute precision of the frozen models (auto: bf16 on CUDA and on CPUs "
                                         "with bf16 matrix units, else fp32)",
                            choices=PRECISIONS)
    cut_batch: int = option(32, help="Cutouts per CLIP forward (0: all at once); bounds memory for any --cutn",
                            min=0, max=4096)
    compile: str = option("auto", help="torch.compile the CLIP image towers (auto: when this machine's bench measurements say it pays)", choices=COMPILE_MODES)
    out: str = option("outputs", help="Output directory (a folder per run inside)")
    save_every: int = option(50, help="Save a frame every N steps (0: none)", min=0)
    checkpoint_every: int | None = option(
        None, help="Save resumable state every N steps (default: with frames; 0: only on interrupt)", min=0)
    video: bool = option(False, help="Write an mp4 of the frames")
    gif: bool = option(False, help="Write an animated gif of the frames")
    svg_frames: bool = option(False, help="Also write an SVG of every saved frame (vector generators)")
    fps: int = option(15, help="Frames per second of video/gif", min=1, max=240)
    image_prompts: tuple[str, ...] = option((), help="Image prompts PATH[:weight]")
    init_image: str | None = option(None, help="Start from this image")
    init_weight: float = option(0.0, help="Pull towards the init image (pixel MSE weight)", min=0.0)
    mask: str | None = option(None, help="Edit only where this mask image is white (needs init_image)")
    zoom: float = option(1.0, help="Animation: scale the image by this per frame (e.g. 1.02)", min=0.5, max=2.0)
    pan: tuple[float, float] = option((0.0, 0.0), help="Animation: shift X,Y pixels per frame")
    rotate: float = option(0.0, help="Animation: rotate degrees per frame", min=-180.0, max=180.0)
    story: str = option("", help="Prompt schedule 'a forest:0-150|a forest on fire:150-300'")
    story_blend: int = option(0, help="Steps over which story segments cross-fade", min=0)
    tv_weight: float = option(0.0, help="Total-variation smoothness weight", min=0.0)
    ema: float = option(0.0, help="Write frames and the final image from an exponential moving average of the "
                                  "parameters with this decay, e.g. 0.9 (0: the raw parameters)", min=0.0, max=0.9999)
    latent_l2: float = option(0.0, help="Pull the parameters towards their start: adds weight × ‖z − z₀‖² to the "
                                        "loss", min=0.0)
    latent_l2_decay: float = option(0.0, help="Fraction of the run over which --latent-l2 falls linearly to 0 "
                                              "(0: it stays)", min=0.0, max=1.0)
    cut_schedule: str = option("", help="Cutout kinds over the run, e.g. 'overview:0-40%,inner:40-100%' (overview: "
                                        "the whole image; inner: random crops; mixed: half each; the rest: inner)")
    init_search: int = option(0, help="Score N random starts with CLIP (augmented) and start from the best "
                                      "(0: the generator's own start; --init-image or a prior start replaces it)", min=0, max=100_000)
    init_search_views: int = option(8, help="Augmented views per start that --init-search scores", min=1, max=256)
    init_search_shapes: bool = option(False, help="--init-search draws shape images (a flat field and one blob of "
                                                  "another colour) that the generator encodes, not its own random "
                                                  "starts (generators that start from an image)")
    init_mix: int = option(0, help="Start from the softmax-weighted mix of the best K searched starts "
                                   "(FuseDream; 0 or 1: the best alone)", min=0, max=100_000)
    eval_clip: tuple[str, ...] = option((), help="Held-out CLIP model(s), outside the guidance, that score the "
                                                 "result (run.json, summary)")
    eval_views: int = option(16, help="Augmented views of the held-out score (0: the whole image only)",
                             min=0, max=1024)
    candidates: int = option(1, help="Generate N seeds (with a prior start: draw N prior samples) and keep the "
                                     "best by CLIP score", min=1, max=10_000)
    keep: int = option(1, help="How many of the best candidates to keep (best-1.png …; with a prior start, "
                               "each is refined)", min=1)
    rank_clip: tuple[str, ...] = option((), help="CLIP model(s) that rank candidates (default: the guiding ones)")
    offline: bool = option(False, help="Never touch the network")
    preset: str | None = option(None, help="The preset these settings started from")
    options: Any = dataclasses.field(default=NoOptions(), metadata={"help": "generator options"})

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the generator's options appear as a section named after it."""
        data = to_plain(self)
        data[self.generator] = data.pop("options")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> "Settings":
        return resolve([(source or "saved settings", data)])


_TRUE = ("1", "true", "yes", "on")


def offline_from_environment(environ: Mapping[str, str] | None = None) -> bool:
    """The one offline rule: ``CLIPGEN_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` means never touch
    the network. Read only at the edges (the CLI, :func:`resolve_run_settings`); everything
    below is told through ``Settings.offline`` or an ``offline`` argument."""
    environ = os.environ if environ is None else environ
    return any(environ.get(name, "").strip().lower() in _TRUE for name in ("CLIPGEN_OFFLINE", "HF_HUB_OFFLINE"))


CORE_KEYS = tuple(f.name for f in dataclasses.fields(Settings) if f.name != "options")


def parse_set(assignments: list[str]) -> dict[str, Any]:
    """``["steps=10", "fourier.decay=1.2"]`` -> nested dict of raw strings."""
    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--set {item!r}: expected key=value, e.g. --set steps=200")
        *sections, leaf = key.split(".")
        if len(sections) > 1 or not leaf:
            raise SettingsError(f"--set {item!r}: keys are NAME or GENERATOR.NAME")
        target = out.setdefault(sections[0], {}) if sections else out
        if not isinstance(target, dict):
            raise SettingsError(f"--set {item!r}: {sections[0]!r} is a setting, not a section")
        target[leaf] = value
    return out


def resolve(layers: list[tuple[str, dict[str, Any]]]) -> Settings:
    """Merge ``(source, values)`` layers, lowest priority first, into validated Settings."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, values in layers:
        merged = merge(merged, values)
        sources.update({key: source for key in flat_keys(values)})

    core = {k: v for k, v in merged.items() if not isinstance(v, dict)}
    sections = {k: v for k, v in merged.items() if isinstance(v, dict)}
    for key in core:
        if key not in CORE_KEYS:
            hint = did_you_mean(key, list(CORE_KEYS) + generator_names())
            raise SettingsError(f"unknown setting {key!r} (from {sources.get(key, '?')}); {hint}")
    for name in sections:
        if name not in generator_names():
            where = sources.get(next(iter(flat_keys({name: sections[name]})), name), "?")
            raise SettingsError(
                f"unknown section [{name}] (from {where}); sections are generator names: "
                f"{', '.join(generator_names())}"
            )
    settings = build(Settings, core, sources)
    # Every section is checked, not only the selected generator's, so a typo in a
    # preset is caught even while another generator is in use.
    options = {
        name: build(get_generator_class(name).Options, values, sources, section=name)
        for name, values in sections.items()
    }
    generator_cls = get_generator_class(settings.generator)
    chosen = options.get(settings.generator) or generator_cls.Options()
    return dataclasses.replace(settings, options=chosen)


def resolve_run_settings(
    preset: str | None = None,
    flags: dict[str, Any] | None = None,
    assignments: list[str] | None = None,
) -> Settings:
    """The CLI/API entry point: defaults < preset < flags < --set; the environment can only
    make a run offline (see :func:`offline_from_environment`)."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if preset:
        loaded = load_preset(preset)
        for key in flat_keys(loaded.values):
            layers.append((loaded.sources[key], _nest(key, _lookup(loaded.values, key))))
        layers.append(("preset", {"preset": preset}))
    if flags:
        layers.append(("command line", {k: v for k, v in flags.items() if v is not None}))
    if assignments:
        layers.append(("--set", parse_set(assignments)))
    settings = resolve(layers)
    if not settings.offline and offline_from_environment():
        settings = dataclasses.replace(settings, offline=True)
    return settings


def _lookup(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    *parents, leaf = dotted.split(".")
    out: dict[str, Any] = {leaf: value}
    for parent in reversed(parents):
        out = {parent: out}
    return out
