"""Strokes as an SVG document, drawn exactly as :func:`clipgen.generators.clipdraw.raster.rasterize` draws them.

Same pixel coordinates (the viewBox is the canvas), full stroke widths, round caps and
joins, straight-alpha colours composited in order over a background rectangle. Also
home to the colour parser, so the raster background and the SVG one agree.
"""

from __future__ import annotations

import re
from typing import Sequence

import torch

#: CSS colour names accepted for backgrounds (a small, unambiguous subset).
NAMED_COLORS: dict[str, str] = {
    "white": "#ffffff",
    "black": "#000000",
    "gray": "#808080",
    "grey": "#808080",
    "lightgray": "#d3d3d3",
    "lightgrey": "#d3d3d3",
    "darkgray": "#a9a9a9",
    "darkgrey": "#a9a9a9",
    "red": "#ff0000",
    "green": "#008000",
    "blue": "#0000ff",
    "yellow": "#ffff00",
    "cyan": "#00ffff",
    "magenta": "#ff00ff",
    "orange": "#ffa500",
    "purple": "#800080",
    "brown": "#a52a2a",
    "pink": "#ffc0cb",
    "beige": "#f5f5dc",
    "ivory": "#fffff0",
    "navy": "#000080",
}

_HEX = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


def parse_color(text: str) -> tuple[float, float, float]:
    """``"white"``, ``"#fff"`` or ``"#rrggbb"`` -> RGB floats in [0, 1].

    Raises ``ValueError`` (one line, naming valid forms) for anything else; callers
    turn it into a SettingsError with the setting's name.
    """
    value = NAMED_COLORS.get(text.strip().lower(), text.strip())
    if not _HEX.fullmatch(value):
        raise ValueError(
            f"{text!r} is not a colour; use '#rrggbb', '#rgb' or a name such as white, black, grey"
        )
    digits = value[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return tuple(int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))


def hex_color(rgb: Sequence[float]) -> str:
    """RGB floats in [0, 1] -> ``#rrggbb`` (rounded, clamped)."""
    return "#" + "".join(f"{round(min(max(float(c), 0.0), 1.0) * 255):02x}" for c in rgb)


def _num(value: float) -> str:
    """Short fixed-point text: enough precision for sub-pixel placement, no exponent."""
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def path_data(points: Sequence[Sequence[float]], closed: bool = False) -> str:
    """``(3S+1, 2)`` control points of one stroke -> an SVG ``d`` attribute."""
    head, *rest = points
    parts = [f"M {_num(head[0])} {_num(head[1])}"]
    for i in range(0, len(rest), 3):
        controls = " ".join(f"{_num(x)} {_num(y)}" for x, y in rest[i : i + 3])
        parts.append(f"C {controls}")
    if closed:
        parts.append("Z")
    return " ".join(parts)


def _stroke_element(points, width: float, rgba, closed: bool) -> str:
    color = hex_color(rgba[:3])
    alpha = _num(min(max(float(rgba[3]), 0.0), 1.0))
    common = (
        f'd="{path_data(points, closed)}" stroke="{color}" stroke-width="{_num(width)}" '
        'stroke-linecap="round" stroke-linejoin="round"'
    )
    if closed:
        # Fill and outline share one opacity applied to the pair as a group, which is
        # how the raster combines them (one coverage, one alpha).
        return f'<path {common} fill="{color}" opacity="{alpha}"/>'
    return f'<path {common} fill="none" stroke-opacity="{alpha}"/>'


def strokes_to_svg(
    points: torch.Tensor,
    widths: torch.Tensor,
    colors: torch.Tensor,
    background: Sequence[float],
    size: tuple[int, int],
    closed: bool = False,
) -> str:
    """An SVG document of the strokes; arguments as for :func:`clipgen.generators.clipdraw.raster.rasterize`.

    ``points``: ``(N, 3S+1, 2)``; ``widths``: ``(N,)``; ``colors``: ``(N, 4)`` RGBA;
    ``background``: 3 floats; ``size``: ``(width, height)`` in pixels.
    """
    width, height = size
    pts = points.detach().to("cpu", torch.float64).tolist()
    ws = widths.detach().reshape(-1).to("cpu", torch.float64).tolist()
    cs = colors.detach().to("cpu", torch.float64).tolist()
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="{hex_color(background)}"/>',
    ]
    lines.extend(_stroke_element(p, w, c, closed) for p, w, c in zip(pts, ws, cs))
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


__all__ = ["NAMED_COLORS", "hex_color", "parse_color", "path_data", "strokes_to_svg"]
