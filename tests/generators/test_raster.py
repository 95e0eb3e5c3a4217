"""The stroke rasteriser: geometry, compositing, gradients, chunking, and agreement with SVG."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch

from clipgen.generators.clipdraw.raster import flatten_beziers, rasterize
from clipgen.generators.clipdraw.svg import hex_color, parse_color, path_data, strokes_to_svg

WHITE = (1.0, 1.0, 1.0)


def random_strokes(n, size, segments=1, seed=0, radius=0.1, dtype=torch.float32):
    """CLIPDraw-like strokes: points near a random start, widths 1..8 px, random RGBA."""
    g = torch.Generator().manual_seed(seed)
    width, height = size
    start = torch.rand(n, 1, 2, generator=g, dtype=torch.float64)
    steps = radius * (torch.rand(n, 3 * segments, 2, generator=g, dtype=torch.float64) - 0.5)
    points = torch.cat([start, start + steps.cumsum(1)], 1) * torch.tensor([width, height])
    widths = 1 + 7 * torch.rand(n, generator=g, dtype=torch.float64)
    colors = torch.rand(n, 4, generator=g, dtype=torch.float64)
    return points.to(dtype), widths.to(dtype), colors.to(dtype)


def line(x0, y0, x1, y1):
    """A straight stroke as one cubic segment, ``(1, 4, 2)``."""
    a, b = torch.tensor([x0, y0]), torch.tensor([x1, y1])
    return torch.stack([a, a + (b - a) / 3, a + 2 * (b - a) / 3, b])[None].float()


def render_svg(svg: str) -> np.ndarray:
    resvg_py = pytest.importorskip("resvg_py")
    from PIL import Image

    png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255


# --- geometry -------------------------------------------------------------------------


def test_flatten_hits_the_end_points_and_closes():
    points = random_strokes(3, (64, 64), segments=2)[0]
    poly = flatten_beziers(points, samples=8)
    assert poly.shape == (3, 2 * 8 + 1, 2)
    assert torch.allclose(poly[:, 0], points[:, 0]) and torch.allclose(poly[:, -1], points[:, -1])
    assert torch.allclose(poly[:, 8], points[:, 3])  # the join between segments
    closed = flatten_beziers(points, samples=8, closed=True)
    assert torch.allclose(closed[:, -1], points[:, 0])


def test_flatten_rejects_wrong_point_counts():
    with pytest.raises(ValueError, match="3\\*S\\+1"):
        flatten_beziers(torch.zeros(2, 5, 2))


def test_coverage_of_a_horizontal_line_is_its_width_per_column():
    # A 3 px wide line along y = 8.5 covers rows 7..9 exactly; its round caps add the ends.
    image = rasterize(line(4, 8.5, 28, 8.5), torch.tensor([3.0]), torch.tensor([[0.0, 0, 0, 1]]), WHITE, (32, 16))
    ink = 1 - image[0, 0]
    assert torch.allclose(ink[:, 10:20].sum(0), torch.full((10,), 3.0), atol=1e-5)
    assert ink[6, 15] == 0 and ink[10, 15] == 0
    assert ink[8, 3] == 1 and ink[8, 2] == 0.5  # the cap reaches 1.5 px past x = 4
    assert ink[8, 1] == 0


def test_thin_lines_fade_rather_than_widen():
    image = rasterize(line(4, 8.5, 28, 8.5), torch.tensor([0.25]), torch.tensor([[0.0, 0, 0, 1]]), WHITE, (32, 16))
    ink = 1 - image[0, 0]
    assert torch.allclose(ink[:, 10:20].sum(0), torch.full((10,), 0.25), atol=1e-5)


def test_closed_shapes_are_filled():
    square = torch.tensor([[[4.0, 4], [20, 4], [28, 4], [28, 28], [28, 28], [4, 28], [4, 28]]])
    # 2 segments: the path goes right, then down and left; Z closes it back up.
    rgba = torch.tensor([[1.0, 0, 0, 1]])
    image = rasterize(square, torch.tensor([1.0]), rgba, WHITE, (32, 32), closed=True)
    assert torch.allclose(image[0, :, 16, 16], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(image[0, :, 1, 1], torch.ones(3))
    open_image = rasterize(square, torch.tensor([1.0]), rgba, WHITE, (32, 32), closed=False)
    assert torch.allclose(open_image[0, :, 16, 16], torch.ones(3))


def test_strokes_composite_in_order_over_the_background():
    points = torch.cat([line(0, 8, 16, 8), line(8, 0, 8, 16)])
    colors = torch.tensor([[1.0, 0, 0, 1], [0, 0, 1, 0.5]])
    image = rasterize(points, torch.tensor([4.0, 4.0]), colors, (0.0, 1.0, 0.0), (16, 16))
    assert torch.allclose(image[0, :, 8, 8], torch.tensor([0.5, 0, 0.5]))  # blue at half over red
    assert torch.allclose(image[0, :, 8, 1], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(image[0, :, 1, 8], torch.tensor([0, 0.5, 0.5]))  # over the green background
    assert torch.allclose(image[0, :, 1, 1], torch.tensor([0.0, 1, 0]))


def test_tiles_without_strokes_show_the_background():
    image = rasterize(line(2, 2, 6, 6), torch.tensor([2.0]), torch.tensor([[0.0, 0, 0, 1]]), (0.0, 0.5, 1.0), (96, 64))
    assert torch.allclose(image[0, :, 32:, 32:], torch.tensor([0.0, 0.5, 1.0])[:, None, None])
    empty = rasterize(torch.zeros(0, 4, 2), torch.zeros(0), torch.zeros(0, 4), (0.0, 0.5, 1.0), (8, 8))
    assert torch.allclose(empty, torch.tensor([0.0, 0.5, 1.0])[None, :, None, None].expand(1, 3, 8, 8))


def test_output_shape_range_and_dtype():
    points, widths, colors = random_strokes(20, (40, 24))
    image = rasterize(points, widths, colors, WHITE, (40, 24))
    assert image.shape == (1, 3, 24, 40) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1


# --- chunking -------------------------------------------------------------------------


@pytest.mark.parametrize("closed", [False, True])
def test_tiling_chunking_and_checkpointing_do_not_change_the_image(closed):
    points, widths, colors = random_strokes(40, (70, 50), segments=2, radius=0.4)
    reference = rasterize(points, widths, colors, WHITE, (70, 50), closed=closed,
                          tile=4096, max_chunk_elements=1 << 40)
    for tile, elements in [(16, 1), (32, 5000), (7, 1 << 22)]:
        image = rasterize(points, widths, colors, WHITE, (70, 50), closed=closed,
                          tile=tile, max_chunk_elements=elements)
        assert torch.allclose(image, reference, atol=1e-5), (tile, elements)
    # Without culling (what a GPU does, to not wait for which strokes touch which tile).
    unculled = rasterize(points, widths, colors, WHITE, (70, 50), closed=closed, tile=16, cull=False)
    assert torch.allclose(unculled, reference, atol=1e-5)


def test_checkpointing_gives_the_same_gradients():
    def grads(**kwargs):
        params = [t.clone().requires_grad_() for t in random_strokes(30, (48, 48), radius=0.3)]
        weights = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(1))
        (rasterize(*params, WHITE, (48, 48), max_chunk_elements=20000, **kwargs) * weights).sum().backward()
        return [p.grad for p in params]

    for plain, checked in zip(grads(use_checkpoint=False), grads(use_checkpoint=True)):
        assert torch.allclose(plain, checked, atol=1e-5)


# --- gradients ------------------------------------------------------------------------


def _loss(points, widths, colors, closed=False):
    size = (32, 32)
    weights = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(7), dtype=points.dtype)
    return (rasterize(points, widths, colors, (0.2, 0.5, 0.9), size, closed=closed) * weights).sum()


@pytest.mark.parametrize("closed", [False, True])
def test_gradients_reach_points_widths_and_colours(closed):
    params = [t.requires_grad_() for t in random_strokes(8, (32, 32), radius=0.3)]
    _loss(*params, closed=closed).backward()
    for name, p in zip(("points", "widths", "colors"), params):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert (p.grad.abs() > 0).any(), name
    # Every stroke on the canvas gets some signal through its points and widths.
    assert (params[0].grad.abs().sum((1, 2)) > 0).all()
    assert (params[1].grad.abs() > 0).all()


@pytest.mark.parametrize("closed", [False, True])
def test_gradients_agree_with_finite_differences(closed):
    points, widths, colors = random_strokes(6, (32, 32), radius=0.3, dtype=torch.float64)
    params = [points.requires_grad_(), widths.requires_grad_(), colors.requires_grad_()]
    _loss(*params, closed=closed).backward()
    # One scalar of each kind, for two strokes: x and y of two control points, a
    # width, a colour channel and an alpha.
    picks = [(0, (1, 0, 0)), (0, (1, 2, 1)), (0, (4, 3, 0)), (1, (1,)), (1, (4,)),
             (2, (1, 0)), (2, (4, 3))]
    eps = 1e-5
    mattered = 0
    for which, index in picks:
        analytic = params[which].grad[index].item()
        with torch.no_grad():
            plus = [p.clone() for p in params]
            minus = [p.clone() for p in params]
            plus[which][index] += eps
            minus[which][index] -= eps
            numeric = (_loss(*plus, closed=closed) - _loss(*minus, closed=closed)).item() / (2 * eps)
        assert abs(analytic - numeric) <= 1e-3 * abs(numeric) + 1e-7, (which, index, analytic, numeric)
        mattered += abs(numeric) > 1e-3
    assert mattered >= len(picks) - 1  # the picks are on the canvas and matter


# --- SVG ------------------------------------------------------------------------------


def test_parse_color():
    assert parse_color("white") == (1.0, 1.0, 1.0)
    assert parse_color("#f00") == (1.0, 0.0, 0.0)
    assert parse_color(" #336699 ") == (0x33 / 255, 0x66 / 255, 0x99 / 255)
    assert hex_color(parse_color("#336699")) == "#336699"
    with pytest.raises(ValueError, match="#rrggbb"):
        parse_color("whit")


def test_path_data_is_move_then_cubics():
    points = [[0, 0], [1, 1], [2, 2], [3, 3], [4.5, 4], [5, 5], [6.25, 6]]
    assert path_data(points) == "M 0 0 C 1 1 2 2 3 3 C 4.5 4 5 5 6.25 6"
    assert path_data(points, closed=True).endswith(" Z")


def test_svg_document_is_well_formed():
    points, widths, colors = random_strokes(5, (64, 48), segments=3)
    root = ET.fromstring(strokes_to_svg(points, widths, colors, WHITE, (64, 48)))
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg" and root.get("viewBox") == "0 0 64 48"
    assert root.find(f"{ns}rect").get("fill") == "#ffffff"
    paths = root.findall(f"{ns}path")
    assert len(paths) == 5
    assert all(p.get("stroke-linecap") == "round" and p.get("stroke-linejoin") == "round" for p in paths)
    assert paths[0].get("d").count("C") == 3


@pytest.mark.parametrize("closed", [False, True])
def test_svg_renders_like_the_raster(closed):
    points, widths, colors = random_strokes(50, (128, 128), segments=2, seed=3, radius=0.3)
    background = parse_color("#f0e8d8")
    ours = rasterize(points, widths, colors, background, (128, 128), closed=closed)[0].permute(1, 2, 0).numpy()
    theirs = render_svg(strokes_to_svg(points, widths, colors, background, (128, 128), closed=closed))
    difference = np.abs(ours - theirs).mean()
    assert difference <= 0.03, difference
    # Not a vacuous match: the strokes cover a good part of the canvas.
    assert np.abs(theirs - np.array(background)).mean() > 0.05
