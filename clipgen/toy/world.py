"""A procedural world of captioned 64×64 images of coloured shapes.

Every image comes with a caption (from templates, with variation) and a structured
label (colour, shape, background, position, size, count) for judging. Generation is
deterministic for a seed and needs only numpy and PIL.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
_SUPERSAMPLE = 4  # draw at 4× and downsample: anti-aliased edges like real images

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 220, 40),
    "orange": (245, 140, 30),
    "purple": (140, 60, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "ring", "cross")
POSITIONS: dict[str, tuple[float, float]] = {
    "center": (0.5, 0.5),
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
    "top left": (0.25, 0.25),
    "top right": (0.75, 0.25),
    "bottom left": (0.25, 0.75),
    "bottom right": (0.75, 0.75),
}
SIZES: dict[str, tuple[float, float]] = {"small": (0.10, 0.13), "large": (0.19, 0.23)}  # radius / image
COUNTS = {1: "one", 2: "two", 3: "three"}
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "star": "stars",
           "ring": "rings", "cross": "crosses"}


@dataclass(frozen=True)
class Label:
    """What an image shows. ``position`` is None when several shapes are scattered."""

    colour: str
    shape: str
    background: str
    size: str
    count: int
    position: str | None


@dataclass(frozen=True)
class Placed:
    """One drawn shape: centre and radius in pixels of the 64×64 image."""

    cx: float
    cy: float
    radius: float
    rotation: float


def _polygon(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    if shape == "square":
        k = r / math.sqrt(2) * 1.25
        corners = [(-k, -k), (k, -k), (k, k), (-k, k)]
        return [(cx + x, cy + y) for x, y in corners]
    if shape == "triangle":
        return [(cx + r * math.cos(rotation + a), cy + r * math.sin(rotation + a))
                for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        points = []
        for i in range(10):
            radius = r if i % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + rotation + i * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        return points
    raise ValueError(shape)


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, colour: tuple[int, int, int], p: Placed,
               scale: float) -> None:
    cx, cy, r = p.cx * scale, p.cy * scale, p.radius * scale
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "ring":
        width = max(1, round(r * 0.38))
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=width)
    elif shape == "cross":
        arm = r * 0.36
        draw.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=colour)
        draw.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=colour)
    else:
        draw.polygon(_polygon(shape, cx, cy, r, p.rotation), fill=colour)


def render(label: Label, placed: list[Placed]) -> Image.Image:
    big = SIZE * _SUPERSAMPLE
    image = Image.new("RGB", (big, big), COLOURS[label.background])
    draw = ImageDraw.Draw(image)
    for p in placed:
        draw_shape(draw, label.shape, COLOURS[label.colour], p, _SUPERSAMPLE)
    return image.resize((SIZE, SIZE), Image.LANCZOS)


def _place(rng: random.Random, label: Label) -> list[Placed]:
    lo, hi = SIZES[label.size]
    if label.count == 1:
        fx, fy = POSITIONS[label.position]
        radius = rng.uniform(lo, hi) * SIZE
        jitter = 0.04 * SIZE
        cx = min(max(fx * SIZE + rng.uniform(-jitter, jitter), radius), SIZE - radius)
        cy = min(max(fy * SIZE + rng.uniform(-jitter, jitter), radius), SIZE - radius)
        return [Placed(cx, cy, radius, rng.uniform(-0.2, 0.2))]
    # Several shapes: small enough to fit side by side, not overlapping.
    placed: list[Placed] = []
    radius_cap = SIZE * (0.16 if label.count == 2 else 0.13)
    while len(placed) < label.count:
        radius = min(rng.uniform(lo, hi) * SIZE, radius_cap)
        cx, cy = rng.uniform(radius, SIZE - radius), rng.uniform(radius, SIZE - radius)
        if all(math.hypot(cx - q.cx, cy - q.cy) > radius + q.radius + 2 for q in placed):
            placed.append(Placed(cx, cy, radius, rng.uniform(-0.2, 0.2)))
    return placed


def sample_label(rng: random.Random) -> Label:
    colour = rng.choice(list(COLOURS))
    background = rng.choice([c for c in COLOURS if c != colour])
    count = rng.choices([1, 2, 3], weights=[0.6, 0.2, 0.2])[0]
    return Label(
        colour=colour, shape=rng.choice(SHAPES), background=background,
        size=rng.choice(list(SIZES)) if count == 1 else "small", count=count,
        position=rng.choice(list(POSITIONS)) if count == 1 else None,
    )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def caption(label: Label, rng: random.Random | None = None) -> str:
    """A caption for ``label``; with ``rng``, one of several phrasings that omit some attributes."""
    if label.count > 1:
        full = f"{COUNTS[label.count]} {label.colour} {PLURALS[label.shape]} on {_a(label.background)} background"
        variants = [full, f"{COUNTS[label.count]} {label.colour} {PLURALS[label.shape]}"]
    else:
        where = "in the center" if label.position == "center" else f"at the {label.position}"
        bg = f"on {_a(label.background)} background"
        full = f"a {label.size} {label.colour} {label.shape} {where} {bg}"
        variants = [
            full,
            f"{_a(label.colour)} {label.shape} {bg}",
            f"a {label.size} {label.colour} {label.shape} {bg}",
            f"{_a(label.colour)} {label.shape} {where}",
            f"{_a(label.colour)} {label.shape}",
        ]
    return rng.choice(variants) if rng is not None else full


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    caption: str
    label: Label
    placed: tuple[Placed, ...]

    def label_dict(self) -> dict:
        return asdict(self.label)


def sample(seed: int, label: Label | None = None, varied_caption: bool = True) -> Sample:
    """One deterministic sample for ``seed`` (optionally with a fixed label)."""
    rng = random.Random(seed)
    label = label or sample_label(rng)
    placed = _place(rng, label)
    return Sample(render(label, placed), caption(label, rng if varied_caption else None), label, tuple(placed))


def batch(start_seed: int, n: int) -> tuple[np.ndarray, list[str], list[Label]]:
    """``n`` samples as a ``(n, 64, 64, 3)`` uint8 array, captions and labels."""
    samples = [sample(start_seed + i) for i in range(n)]
    return (np.stack([np.asarray(s.image) for s in samples]),
            [s.caption for s in samples], [s.label for s in samples])
