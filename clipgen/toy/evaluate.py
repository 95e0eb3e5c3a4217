"""Does guidance produce images that *mean* their prompts? Generate a fixed prompt set
with a preset and let the judge (never used during generation) read each result.

Three fixed sets: :data:`PROMPT_SET` (colour, shape, background), :data:`POSITION_SET`
(also a position) and :data:`COUNT_SET` (two or three shapes). Besides presets,
:func:`evaluate_prior_samples` judges raw prior samples (no ranking, no refinement).
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

from clipgen import api
from clipgen.generators.vqgan.generator import VQGANGenerator, VQGANOptions
from clipgen.generators.base import GeneratorContext
from clipgen.priors.base import PriorContext
from clipgen.priors.registry import decoder_of, load_prior
from clipgen.priors.sampling import Sampling, sample_grids
from clipgen.outputs.images import tensor_to_pil
from clipgen.toy import world
from clipgen.toy.judge import load_shipped_judge, read_attributes

# 20 prompts, every shape at least three times, colours and backgrounds spread out;
# fixed so that rates can be compared across presets and versions.
PROMPT_SET: tuple[tuple[str, str, str], ...] = (
    ("red", "star", "blue"), ("yellow", "circle", "purple"), ("green", "square", "white"),
    ("blue", "triangle", "yellow"), ("white", "ring", "black"), ("orange", "cross", "blue"),
    ("purple", "star", "yellow"), ("black", "circle", "orange"), ("red", "square", "green"),
    ("yellow", "triangle", "black"), ("blue", "ring", "white"), ("green", "cross", "purple"),
    ("white", "star", "red"), ("orange", "circle", "green"), ("purple", "square", "white"),
    ("red", "triangle", "white"), ("black", "ring", "yellow"), ("yellow", "cross", "red"),
    ("blue", "circle", "orange"), ("green", "triangle", "black"),
)
_POSITIONS = ("top left", "bottom right", "center", "top", "left", "bottom", "right", "top right", "bottom left")
# The same 20 colour/shape/background triples, each with a position (all nine used) or a count.
POSITION_SET: tuple[tuple[str, str, str, str], ...] = tuple(
    (*triple, _POSITIONS[i % len(_POSITIONS)]) for i, triple in enumerate(PROMPT_SET))
COUNT_SET: tuple[tuple[str, str, str, int], ...] = tuple(
    (*triple, 2 + i % 2) for i, triple in enumerate(PROMPT_SET))

#: The fixed prompt sets by the names the report scripts take (``--prompt-set``).
PROMPT_SETS = {"basic": PROMPT_SET, "position": POSITION_SET, "count": COUNT_SET}


def prompt_text(colour: str, shape: str, background: str, extra: str | int | None = None) -> str:
    """The prompt for a set entry: ``extra`` is a position name or a count (2, 3)."""
    bg = f"on {world._a(background)} background"
    if isinstance(extra, int):
        return f"{world.COUNTS[extra]} {colour} {world.PLURALS[shape]} {bg}"
    if isinstance(extra, str):
        where = "in the center" if extra == "center" else f"at the {extra}"
        return f"{world._a(colour)} {shape} {where} {bg}"
    return f"{world._a(colour)} {shape} {bg}"


def wanted_attributes(entry: tuple) -> dict:
    wanted = {"colour": entry[0], "shape": entry[1], "background": entry[2]}
    if len(entry) > 3:
        wanted["count" if isinstance(entry[3], int) else "position"] = entry[3]
    return wanted


@dataclass(frozen=True)
class Judged:
    prompt: str
    wanted: dict
    seen: dict
    seconds: float
    image: str

    @property
    def colour_and_background(self) -> bool:
        return all(self.seen[k] == self.wanted[k] for k in ("colour", "background"))

    @property
    def all_three(self) -> bool:
        return self.colour_and_background and self.seen["shape"] == self.wanted["shape"]

    @property
    def all_named(self) -> bool:
        """Everything the prompt names, position or count included."""
        return all(self.seen[k] == v for k, v in self.wanted.items())


def summarise(name: str, results: list[Judged]) -> dict:
    n = len(results)
    return {
        "preset": name, "prompts": n,
        "colour_and_background": sum(r.colour_and_background for r in results) / n,
        "all_three": sum(r.all_three for r in results) / n,
        "all_named": sum(r.all_named for r in results) / n,
        "shape": sum(r.seen["shape"] == r.wanted["shape"] for r in results) / n,
        "seconds_per_image": sum(r.seconds for r in results) / n,
        "results": [{"prompt": r.prompt, "seen": {k: r.seen[k] for k in ("colour", "shape", "background", "position",
                                                                           "count")},
                     "all_three": r.all_three, "colour_and_background": r.colour_and_background,
                     "all_named": r.all_named, "seconds": round(r.seconds, 2)} for r in results],
    }


def prompt_seed(text: str, seed: int = 0) -> int:
    """The seed follows the prompt, so a prompt gets the same start in every subset."""
    return seed + zlib.crc32(text.encode()) % 100_000


def evaluate_preset(preset: str, out: Path, prompts: tuple[tuple, ...] = PROMPT_SET,
                    seed: int = 0, judge=None, assignments: list[str] | None = None, **overrides) -> dict:
    """Generate every prompt with ``preset`` (plus ``overrides`` and ``--set`` style
    ``assignments``) and judge the results."""
    judge = judge or load_shipped_judge()
    results = []
    for entry in prompts:
        text = prompt_text(*entry)
        started = time.perf_counter()
        result = api.generate(text, preset=preset, out=str(out), seed=prompt_seed(text, seed), save_every=0,
                              offline=True, set=assignments, **overrides)
        seconds = time.perf_counter() - started
        seen = read_attributes(judge, [result.image])[0]
        results.append(Judged(text, wanted_attributes(entry), seen, seconds, str(result.paths.get("image", ""))))
    return summarise(preset, results)


class PriorImages:
    """A prior and the VQGAN its tokens belong to, on the CPU: decoded samples for a prompt.
    ``sampling`` changes fields of :class:`Sampling` (``temperature``, ``top_k``,
    ``guidance``) from the prior's defaults."""

    def __init__(self, prior_name: str, sampling: dict | None = None):
        device = torch.device("cpu")
        self.prior = load_prior(prior_name, PriorContext(device, offline=True))
        self.sampling = Sampling(**{"guidance": self.prior.default_guidance, **(sampling or {})})
        self.decoder = VQGANGenerator((world.SIZE, world.SIZE), VQGANOptions(model=decoder_of(prior_name)),
                                      GeneratorContext(device=device, offline=True))

    @torch.no_grad()
    def __call__(self, text: str, n: int, seed: int) -> list:
        tokens = sample_grids(self.prior, text, n, seed, self.sampling)
        return [tensor_to_pil(image) for image in self.decoder.decode_tokens(tokens)]


def evaluate_prior_samples(prior_name: str, per_prompt: int, prompts: tuple[tuple, ...] = PROMPT_SET,
                           sampling: dict | None = None, seed: int = 0, judge=None) -> dict:
    """Raw prior samples, decoded and judged: no CLIP ranking, no refinement (``sampling``:
    as :class:`PriorImages`)."""
    judge = judge or load_shipped_judge()
    samples = PriorImages(prior_name, sampling)
    results = []
    for entry in prompts:
        text = prompt_text(*entry)
        started = time.perf_counter()
        images = samples(text, per_prompt, prompt_seed(text, seed))
        seconds = (time.perf_counter() - started) / per_prompt
        for seen in read_attributes(judge, images):
            results.append(Judged(text, wanted_attributes(entry), seen, seconds, ""))
    report = summarise(f"prior:{prior_name}", results)
    used = samples.sampling
    report["sampling"] = {"temperature": used.temperature, "top_k": used.top_k, "guidance": used.guidance}
    return report
