"""Does guidance produce images that *mean* their prompts? Generate a fixed prompt set
with a preset and let the judge (never used during generation) read each result."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from clipgen import api
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


def prompt_text(colour: str, shape: str, background: str) -> str:
    return f"{world._a(colour)} {shape} on {world._a(background)} background"


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


def evaluate_preset(preset: str, out: Path, prompts: tuple[tuple[str, str, str], ...] = PROMPT_SET,
                    seed: int = 0, judge=None, **overrides) -> dict:
    """Generate every prompt with ``preset`` (plus ``overrides``) and judge the results."""
    judge = judge or load_shipped_judge()
    results = []
    for colour, shape, background in prompts:
        text = prompt_text(colour, shape, background)
        started = time.perf_counter()
        # The seed follows the prompt, so a prompt gets the same start in every subset.
        result = api.generate(text, preset=preset, out=str(out), seed=seed + zlib.crc32(text.encode()) % 100_000,
                              save_every=0, offline=True, **overrides)
        seconds = time.perf_counter() - started
        seen = read_attributes(judge, [result.image])[0]
        results.append(Judged(text, {"colour": colour, "shape": shape, "background": background}, seen,
                              seconds, str(result.paths.get("image", ""))))
    n = len(results)
    return {
        "preset": preset, "prompts": n,
        "colour_and_background": sum(r.colour_and_background for r in results) / n,
        "all_three": sum(r.all_three for r in results) / n,
        "shape": sum(r.seen["shape"] == r.wanted["shape"] for r in results) / n,
        "seconds_per_image": sum(r.seconds for r in results) / n,
        "results": [{"prompt": r.prompt, "seen": {k: r.seen[k] for k in ("colour", "shape", "background")},
                     "all_three": r.all_three, "colour_and_background": r.colour_and_background,
                     "seconds": round(r.seconds, 2)} for r in results],
    }
