"""CLIPDraw: the image is a set of coloured Bézier strokes (Frans et al., 2021).

Parameters, all in pixel units: control points ``(N, 3S+1, 2)``, stroke widths
``(N,)``, RGB ``(N, 3)`` and, with ``opacity``, alpha ``(N, 1)``. The image is
:func:`clipgen.generators.clipdraw.raster.rasterize` of them; :meth:`to_svg` writes the same strokes.

Learning rates: the original uses Adam at 1.0 for points, 0.1 for widths and 0.01 for
colours. Here ``default_lr`` is 1.0 and :meth:`param_groups` gives ``lr``,
``lr * 0.1`` and ``lr * 0.01``, so ``--lr`` scales all three together (``--lr 0.5``
halves each).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from clipgen.config.typed import option
from clipgen.errors import SettingsError
from clipgen.generators.base import Generator, GeneratorContext
from clipgen.generators.clipdraw.raster import rasterize
from clipgen.generators.clipdraw.svg import parse_color, strokes_to_svg

#: Learning-rate multipliers relative to ``lr`` (points move in pixels per step).
WIDTH_LR_SCALE = 0.1
COLOR_LR_SCALE = 0.01


@dataclass(frozen=True)
class ClipDrawOptions:
    strokes: int = option(256, help="Number of strokes", min=1, max=100_000)
    segments: int = option(1, help="Cubic Bézier segments per stroke", min=1, max=8)
    radius: float = option(
        0.1,
        help="Initial spread of a stroke's points (closed: the starting disc's radius), as a fraction of the canvas",
        min=0.0,
        max=2.0,
    )
    init_width: float = option(1.0, help="Initial stroke width in pixels", min=0.0, max=1000.0)
    min_width: float = option(1.0, help="Narrowest stroke in pixels", min=0.0, max=1000.0)
    max_width: float = option(50.0, help="Widest stroke in pixels", min=0.0, max=1000.0)
    background: str = option("white", help="Background colour: a name such as white, or '#rrggbb'")
    learn_background: bool = option(
        False, help="Optimise the background colour too, starting from `background`"
    )
    opacity: bool = option(True, help="Learn each stroke's alpha (false: strokes are opaque)")
    closed: bool = option(False, help="Closed filled shapes (outlined at the stroke width) instead of open strokes")
    color_lr_scale: float = option(
        COLOR_LR_SCALE, help="Colour (and background) learning rate as a fraction of lr", min=0.0, max=10.0
    )
    samples: int = option(16, help="Polyline pieces per segment when rasterising (quality vs. speed)", min=2, max=256)

    def __post_init__(self):
        try:
            parse_color(self.background)
        except ValueError as exc:
            raise SettingsError(f"clipdraw.background: {exc}") from None
        if self.min_width > self.max_width:
            raise SettingsError(
                f"clipdraw.min_width ({self.min_width}) is above clipdraw.max_width "
                f"({self.max_width}); lower min_width or raise max_width"
            )


def random_strokes(
    count: int, segments: int, radius: float, size: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """CLIPDraw's initialisation: ``(count, 3*segments+1, 2)`` pixel coordinates.

    Each stroke starts at a uniform point on the canvas; every following control point
    is the previous one plus a uniform step in ``[-radius/2, radius/2]`` of the canvas.
    """
    start = torch.rand(count, 1, 2, generator=generator)
    steps = radius * (torch.rand(count, 3 * segments, 2, generator=generator) - 0.5)
    unit = torch.cat([start, start + steps.cumsum(dim=1)], dim=1)
    return unit * torch.tensor([float(size[0]), float(size[1])])


def random_blobs(
    count: int, segments: int, radius: float, size: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Closed shapes start as rough discs: control points round a circle of ``radius``
    (a fraction of the canvas), each jittered by a tenth of it, at a centre uniform
    over the places where the whole disc is on the canvas.

    A random walk (the stroke start) folds over itself when closed, and such a
    self-intersecting outline fills as scattered slivers rather than one region; a
    shape that starts half off the canvas tends to be pushed off it altogether.
    """
    k = 3 * segments + 1
    margin = min(radius, 0.5)
    centre = margin + (1 - 2 * margin) * torch.rand(count, 1, 2, generator=generator)
    angle = torch.arange(k) * (2 * torch.pi / k) + 2 * torch.pi * torch.rand(count, 1, generator=generator)
    ring = torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)
    jitter = 0.1 * (torch.rand(count, k, 2, generator=generator) - 0.5)
    unit = centre + radius * (ring + jitter)
    return unit * torch.tensor([float(size[0]), float(size[1])])


class ClipDrawGenerator(Generator):
    """Strokes drawn by a differentiable rasteriser; also writes itself as SVG."""

    default_lr = 1.0
    Options = ClipDrawOptions

    def __init__(self, size: tuple[int, int], options: ClipDrawOptions, context: GeneratorContext):
        super().__init__(size, options, context)
        device = context.device
        n = options.strokes
        points, colors = self._draw()
        width = self._start_width()
        self.points = nn.Parameter(points.to(device))
        self.widths = nn.Parameter(torch.full((n,), float(width), device=device))
        self.rgb = nn.Parameter(colors[:, :3].to(device))
        if options.opacity:
            self.alpha = nn.Parameter(colors[:, 3:].to(device))
        else:
            self.register_buffer("alpha", torch.ones(n, 1, device=device))
        background = torch.tensor(parse_color(options.background), device=device)
        if options.learn_background:
            self.background = nn.Parameter(background)
        else:
            self.register_buffer("background", background)

    def _draw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Random strokes (or closed shapes) and RGBA colours, on the CPU so a seed gives the
        same drawing on every device."""
        options = self.options
        start = random_blobs if options.closed else random_strokes
        points = start(options.strokes, options.segments, options.radius, (self.width, self.height))
        return points, torch.rand(options.strokes, 4)

    @torch.no_grad()
    def random_start(self) -> None:
        """New shapes and colours, and a random background colour when it is learnt (the
        search then also picks the background)."""
        points, colors = self._draw()
        self.points.copy_(points)
        self.rgb.copy_(colors[:, :3])
        if isinstance(self.alpha, nn.Parameter):
            self.alpha.copy_(colors[:, 3:])
        if isinstance(self.background, nn.Parameter):
            self.background.copy_(torch.rand(3))
        self.widths.fill_(self._start_width())

    def _start_width(self) -> float:
        options = self.options
        return float(min(max(options.init_width, options.min_width), options.max_width))

    def colors(self) -> torch.Tensor:
        """``(N, 4)`` straight RGBA in [0, 1]."""
        return torch.cat([self.rgb, self.alpha], dim=1).clamp(0, 1)

    def forward(self) -> torch.Tensor:
        return rasterize(
            self.points,
            self.widths,
            self.colors(),
            self.background,
            (self.width, self.height),
            closed=self.options.closed,
            samples=self.options.samples,
        )

    def param_groups(self, lr: float) -> list[dict]:
        colors = [p for p in (self.rgb, self.alpha, self.background) if isinstance(p, nn.Parameter)]
        return [
            {"params": [self.points], "lr": lr, "name": "points"},
            {"params": [self.widths], "lr": lr * WIDTH_LR_SCALE, "name": "widths"},
            {"params": colors, "lr": lr * self.options.color_lr_scale, "name": "colors"},
        ]

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        self.widths.clamp_(self.options.min_width, self.options.max_width)
        self.rgb.clamp_(0, 1)
        self.alpha.clamp_(0, 1)
        self.background.clamp_(0, 1)

    def to_svg(self) -> str:
        return strokes_to_svg(
            self.points,
            self.widths,
            self.colors(),
            self.background.detach().tolist(),
            (self.width, self.height),
            closed=self.options.closed,
        )
