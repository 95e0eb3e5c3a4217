"""A differentiable rasteriser for cubic Bézier strokes, in pure torch.

Coordinates are pixels: x to the right, y down, pixel ``(i, j)`` covers
``[i, i+1] x [j, j+1]`` and is sampled at its centre, the SVG convention, so an SVG
of the same strokes renders to the same image (see :mod:`clipgen.generators.clipdraw.svg`).

A stroke is a chain of ``S`` cubic segments sharing end points: ``3S + 1`` control
points. Each is flattened to a polyline of ``samples`` pieces per segment; a pixel's
coverage comes from its distance ``d`` to that polyline, box-filtered across one
pixel: ``clamp(min(d + ½, r) - max(d - ½, -r), 0, 1)`` for half-width ``r``. The
distance to a segment ends in a disc at each end, so caps and joins are round. A
closed shape adds the edge back to its start and is filled (non-zero rule) as well
as outlined in the same colour. Strokes are composited in order, straight-alpha
"over", on an opaque background.

Gradients reach points, widths and colours, but - as with diffvg - points and
widths only move through pixels on the anti-aliased edge band.

Cost and memory: the image is cut into tiles; each tile only sees strokes whose
bounding box touches it, in chunks sized so that the ``(chunk, pixels, pieces)``
distance tensor stays bounded. The search for the nearest polyline piece runs
without autograd and only the distance to that piece is recomputed with it, so what
autograd keeps is ``(chunk, pixels)``, not ``(chunk, pixels, pieces)``. When even
that would exceed ``memory_budget``, each chunk is checkpointed (recomputed in the
backward pass) and only the running ``(3, pixels)`` image per chunk is kept.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch.utils.checkpoint import checkpoint

#: Bytes autograd keeps per (stroke, pixel) pair of a chunk without checkpointing,
#: measured on CPU float32 (a dozen ``(chunk, pixels)`` tensors and an int64 index).
_SAVED_BYTES_PER_PAIR = 100
_EPS = 1e-12


@lru_cache(maxsize=32)
def _bernstein(samples: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(samples, 4)`` cubic Bernstein weights at t = 0, 1/samples, ... (excluding 1)."""
    t = torch.arange(samples, dtype=torch.float64) / samples
    u = 1 - t
    basis = torch.stack([u**3, 3 * u**2 * t, 3 * u * t**2, t**3], dim=1)
    return basis.to(dtype=dtype, device=device)


def flatten_beziers(points: torch.Tensor, samples: int = 16, closed: bool = False) -> torch.Tensor:
    """Sample chains of cubic Béziers into polylines.

    ``points``: ``(N, 3S+1, 2)`` control points. Returns ``(N, S*samples + 1, 2)``
    vertices, or ``(N, S*samples + 2, 2)`` when ``closed`` (the start repeated at the
    end, the straight closing edge an SVG ``Z`` draws).
    """
    n, count, _ = points.shape
    segments = (count - 1) // 3
    if count != 3 * segments + 1 or segments < 1:
        raise ValueError(f"points must have 3*S+1 control points per stroke, got {count}")
    index = torch.arange(segments, device=points.device)[:, None] * 3 + torch.arange(4, device=points.device)
    controls = points[:, index]  # (N, S, 4, 2)
    basis = _bernstein(samples, points.dtype, points.device)
    curve = torch.einsum("ka,nsad->nskd", basis, controls).reshape(n, segments * samples, 2)
    ends = [points[:, -1:], points[:, :1]] if closed else [points[:, -1:]]
    return torch.cat([curve, *ends], dim=1)


@torch.no_grad()
def _nearest_piece(px, py, ax, ay, bx, by, closed: bool):
    """Index of the nearest polyline piece per (stroke, pixel), and non-zero insideness.

    ``px, py``: ``(T,)`` pixel centres; ``ax .. by``: ``(C, K)`` piece ends. Returns
    ``(C, T)`` long indices and, when ``closed``, a ``(C, T)`` bool (else ``None``).
    The ``(C, T, K)`` work happens here, without autograd and mostly in place.
    """
    abx, aby = (bx - ax)[:, None], (by - ay)[:, None]
    apx = px[None, :, None] - ax[:, None]
    apy = py[None, :, None] - ay[:, None]
    inside = None
    if closed:
        # Winding number (SVG's default non-zero rule): a piece crossing the pixel's row
        # towards +y with the pixel on its left counts +1, towards -y with it on its right -1.
        up = (ay[:, None] <= py[None, :, None]) & (by[:, None] > py[None, :, None])
        down = (ay[:, None] > py[None, :, None]) & (by[:, None] <= py[None, :, None])
        side = abx * apy - apx * aby
        winding = (up & (side > 0)).sum(-1) - (down & (side < 0)).sum(-1)
        inside = winding != 0
        del up, down, side
    inv_len2 = 1 / (abx.square() + aby.square()).clamp_min(_EPS)
    t = (apx * abx).add_(apy * aby).mul_(inv_len2).clamp_(0, 1)
    apx.sub_(t * abx)
    apy.sub_(t.mul_(aby))
    return apx.square_().add_(apy.square_()).argmin(-1), inside


def _distance_to(px, py, ax, ay, bx, by):
    """Differentiable distance ``(C, T)`` from pixel centres ``(T,)`` to segments ``(C, T)``."""
    abx, aby = bx - ax, by - ay
    apx, apy = px - ax, py - ay
    t = ((apx * abx + apy * aby) / (abx.square() + aby.square()).clamp_min(_EPS)).clamp(0, 1)
    # The epsilon keeps sqrt's gradient finite on the centre line.
    return ((apx - t * abx).square() + (apy - t * aby).square() + _EPS).sqrt()


def coverage(px, py, poly, half_width, closed: bool = False) -> torch.Tensor:
    """Anti-aliased coverage ``(C, T)`` in [0, 1] of strokes over pixel centres.

    ``px, py``: ``(T,)``; ``poly``: ``(C, K+1, 2)`` polylines (closed ones already end at
    their start); ``half_width``: ``(C,)``.
    """
    ax, ay = poly[:, :-1, 0], poly[:, :-1, 1]
    bx, by = poly[:, 1:, 0], poly[:, 1:, 1]
    index, inside = _nearest_piece(px, py, ax, ay, bx, by, closed)
    d = _distance_to(px, py, ax.gather(1, index), ay.gather(1, index), bx.gather(1, index), by.gather(1, index))
    r = half_width[:, None]
    # Length of [d - ½, d + ½] inside [-r, r]: a one-pixel box filter across the stroke,
    # which also fades strokes thinner than a pixel instead of widening them.
    stroke = (torch.minimum(d + 0.5, r) - torch.maximum(d - 0.5, -r)).clamp(0, 1)
    if not closed:
        return stroke
    fill = torch.where(inside, 0.5 + d, 0.5 - d).clamp(0, 1)
    # Fill then outline in one layer, as an SVG path with both and group opacity.
    return 1 - (1 - fill) * (1 - stroke)


def _composite_chunk(image, px, py, poly, half_width, colors, closed: bool):
    """Composite a chunk of strokes, in order, over ``image`` ``(3, T)``; returns ``(3, T)``.

    With transmittance ``after[i] = prod_{j >= i} (1 - a_j)``, "over" in order is
    ``image * after[0] + sum_i rgb_i a_i after[i+1]``: one reversed cumprod, no loop.
    """
    alpha = coverage(px, py, poly, half_width, closed) * colors[:, 3:4]
    after = torch.cumprod((1 - alpha).flip(0), dim=0).flip(0)
    behind = torch.cat([after[1:], torch.ones_like(after[:1])])
    return image * after[:1] + colors[:, :3].T @ (alpha * behind)


def _tiles(width: int, height: int, tile: int):
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            yield x0, y0, min(tile, width - x0), min(tile, height - y0)


def _pixel_centres(x0, y0, tw, th, like: torch.Tensor):
    xs = torch.arange(x0, x0 + tw, dtype=like.dtype, device=like.device) + 0.5
    ys = torch.arange(y0, y0 + th, dtype=like.dtype, device=like.device) + 0.5
    return xs.repeat(th), ys.repeat_interleave(tw)


def _touching(lo, hi, x0, y0, tw, th) -> torch.Tensor:
    """Indices ``(M,)``, in drawing order, of strokes whose box ``lo..hi`` meets the tile."""
    hit = (lo[:, 0] <= x0 + tw) & (hi[:, 0] >= x0) & (lo[:, 1] <= y0 + th) & (hi[:, 1] >= y0)
    return hit.nonzero().squeeze(1)


@torch.no_grad()
def _culled_tiles(poly: torch.Tensor, half_width: torch.Tensor, size: tuple[int, int], tile: int, cull: bool):
    """``[((x0, y0, tw, th), index)]``: each tile with the strokes that can touch it, or
    with every stroke when not ``cull``-ing (the same image)."""
    if not cull:
        every = torch.arange(poly.shape[0], device=poly.device)
        return [(box, every) for box in _tiles(*size, tile)]
    # A stroke cannot cover a pixel further than r + 1/2 from its polyline.
    margin = (half_width.clamp_min(0) + 1)[:, None]
    lo, hi = poly.amin(1) - margin, poly.amax(1) + margin
    return [(box, _touching(lo, hi, *box)) for box in _tiles(*size, tile)]


def rasterize(
    points: torch.Tensor,
    widths: torch.Tensor,
    colors: torch.Tensor,
    background,
    size: tuple[int, int],
    *,
    closed: bool = False,
    samples: int = 16,
    tile: int = 32,
    max_chunk_elements: int = 1 << 22,
    memory_budget: float = 2e9,
    use_checkpoint: bool | None = None,
    cull: bool | None = None,
) -> torch.Tensor:
    """Render strokes over a background; returns ``(1, 3, H, W)`` in [0, 1].

    ``points``: ``(N, 3S+1, 2)`` pixel coordinates; ``widths``: ``(N,)`` full stroke
    widths in pixels; ``colors``: ``(N, 4)`` straight RGBA in [0, 1]; ``background``:
    3 floats or a ``(3,)`` tensor; ``size``: ``(width, height)``. Strokes are drawn in
    order (the last on top). ``tile`` and ``max_chunk_elements`` trade speed for memory
    without changing the result; ``use_checkpoint=None`` checkpoints chunks only when
    the autograd graph would otherwise exceed ``memory_budget`` bytes. ``cull=None`` skips
    strokes that cannot touch a tile on the CPU only: which ones do is known only after the
    device has computed it, and a GPU waiting for that every step loses more than drawing
    the strokes that cover nothing costs.
    """
    bg = torch.as_tensor(background, dtype=points.dtype, device=points.device).reshape(3, 1)
    poly = flatten_beziers(points, samples, closed)
    half = widths.reshape(-1) / 2
    tiles = _culled_tiles(poly, half, size, tile, points.device.type == "cpu" if cull is None else cull)
    pieces = poly.shape[1] - 1
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (points, widths, colors))
    if use_checkpoint is None:
        pairs = sum(len(index) * box[2] * box[3] for box, index in tiles)
        use_checkpoint = grad and pairs * _SAVED_BYTES_PER_PAIR > memory_budget
    rows: dict[int, list[torch.Tensor]] = {}
    for (x0, y0, tw, th), index in tiles:
        px, py = _pixel_centres(x0, y0, tw, th, points)
        image = bg.expand(3, tw * th)
        chunk = max(1, max_chunk_elements // (tw * th * pieces))
        # split() of an empty index yields one empty part, which must not composite.
        for part in index.split(chunk) if len(index) else ():
            args = (image, px, py, poly[part], half[part], colors[part])
            if use_checkpoint and grad:
                image = checkpoint(_composite_chunk, *args, closed, use_reentrant=False)
            else:
                image = _composite_chunk(*args, closed)
        rows.setdefault(y0, []).append(image.reshape(3, th, tw))
    image = torch.cat([torch.cat(row, dim=2) for row in rows.values()], dim=1)
    return image.unsqueeze(0)


def estimate_pairs(points, widths, size: tuple[int, int], *, closed: bool = False,
                   samples: int = 16, tile: int = 32) -> int:
    """Stroke-pixel pairs :func:`rasterize` evaluates after culling: what its cost scales with."""
    poly = flatten_beziers(points.detach(), samples, closed)
    tiles = _culled_tiles(poly, widths.detach().reshape(-1) / 2, size, tile)
    return sum(len(index) * box[2] * box[3] for box, index in tiles)


__all__ = ["coverage", "estimate_pairs", "flatten_beziers", "rasterize"]
