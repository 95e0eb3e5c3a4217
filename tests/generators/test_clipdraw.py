"""The CLIPDraw generator: options, parameters, SVG, preset, and an end-to-end run."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from fixtures import REPO_ROOT
from PIL import Image

import clipgen
from clipgen.config.settings import resolve_run_settings
from clipgen.errors import SettingsError
from clipgen.generators import get_generator_class
from clipgen.generators.base import GeneratorContext, VectorGraphic
from clipgen.generators.clipdraw.generator import ClipDrawGenerator, ClipDrawOptions, random_blobs, random_strokes
from clipgen.generators.masked import mask_generator
from clipgen.generators.pixels import PixelGenerator, PixelOptions

CPU = GeneratorContext(device=torch.device("cpu"))
SVG = "{http://www.w3.org/2000/svg}"
PRESET = REPO_ROOT / "presets" / "clipdraw.toml"


def make(size=(48, 32), **options) -> ClipDrawGenerator:
    torch.manual_seed(0)
    return ClipDrawGenerator(size, ClipDrawOptions(**{"strokes": 12, **options}), CPU)


def test_registered_and_a_vector_graphic():
    assert get_generator_class("clipdraw") is ClipDrawGenerator
    assert isinstance(make(), VectorGraphic)


@pytest.mark.parametrize("kwargs", [{"opacity": False}, {"closed": True, "segments": 3}, {}])
def test_forward_is_an_image_of_the_canvas_size(kwargs):
    generator = make(**kwargs)
    image = generator()
    assert image.shape == (1, 3, 32, 48) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1
    assert (image < 1).any()  # strokes drawn over the white background


def test_initial_strokes_follow_clipdraw():
    points = random_strokes(500, 2, 0.1, (200, 100), torch.Generator().manual_seed(0))
    assert points.shape == (500, 7, 2)
    steps = (points[:, 1:] - points[:, :-1]) / torch.tensor([200.0, 100.0])
    assert steps.abs().max() <= 0.05 + 1e-6  # each point within radius/2 of the last
    starts = points[:, 0] / torch.tensor([200.0, 100.0])
    assert 0 <= starts.min() and starts.max() <= 1


def test_closed_shapes_start_as_discs_not_random_walks():
    points = random_blobs(200, 4, 0.2, (64, 32), torch.Generator().manual_seed(0))
    assert points.shape == (200, 13, 2)
    unit = points / torch.tensor([64.0, 32.0])
    centre = unit.mean(dim=1, keepdim=True)
    distance = (unit - centre).norm(dim=-1)
    # every control point near the circle of radius 0.2 (jitter is ±0.01 per axis)
    assert (distance - 0.2).abs().max() < 0.03
    # in angular order round the centre, so the outline does not cross itself
    angles = torch.atan2(unit[..., 1] - centre[..., 1], unit[..., 0] - centre[..., 0])
    turns = torch.remainder(angles[:, 1:] - angles[:, :-1], 2 * math.pi)
    assert torch.allclose(turns.sum(dim=1), torch.full((200,), 2 * math.pi * 12 / 13), atol=0.15)
    assert unit.min() > -0.015 and unit.max() < 1.015  # the disc starts on the canvas (jitter aside)
    assert torch.equal(make(closed=True, segments=4).points, make(closed=True, segments=4).points)


def test_learnt_background_gets_gradient_and_the_colour_rate():
    generator = make(learn_background=True, background="#808080", color_lr_scale=0.25)
    assert any(p is generator.background for p in generator.parameters())
    colours = next(g for g in generator.param_groups(2.0) if g["name"] == "colors")
    assert colours["lr"] == 0.5 and any(p is generator.background for p in colours["params"])
    generator().mean().backward()
    assert generator.background.grad is not None and generator.background.grad.abs().sum() > 0
    with torch.no_grad():
        generator.background.fill_(1.7)
    generator.after_step(1)
    assert generator.background.tolist() == [1.0, 1.0, 1.0]
    svg = ET.fromstring(generator.to_svg())
    assert svg.find(f"{SVG}rect").get("fill").lower() == "#ffffff"


def test_fixed_background_is_a_buffer():
    generator = make()
    assert all(p is not generator.background for p in generator.parameters())
    assert generator.background.tolist() == [1.0, 1.0, 1.0]


def test_seeded_init_is_reproducible():
    assert torch.equal(make().points, make().points)


def test_param_groups_scale_with_lr():
    generator = make()
    groups = generator.param_groups(2.0)
    assert [g["lr"] for g in groups] == [2.0, 0.2, 0.02]
    names = {id(p) for g in groups for p in g["params"]}
    assert names == {id(p) for p in generator.parameters()}
    assert ClipDrawGenerator.default_lr == 1.0


def test_fixed_opacity_is_not_learnt():
    generator = make(opacity=False)
    assert all(p is not generator.alpha for p in generator.parameters())
    assert torch.equal(generator.colors()[:, 3], torch.ones(12))


def test_after_step_clamps_widths_and_colours():
    generator = make(min_width=2.0, max_width=5.0)
    with torch.no_grad():
        generator.widths[:3] = torch.tensor([0.5, 3.0, 9.0])
        generator.rgb[0] = torch.tensor([-1.0, 0.5, 2.0])
        generator.alpha[0] = 1.5
    generator.after_step(1)
    assert generator.widths[:3].tolist() == [2.0, 3.0, 5.0]
    assert generator.rgb[0].tolist() == [0.0, 0.5, 1.0] and generator.alpha[0].item() == 1.0
    assert (generator.widths >= 2.0).all()  # the initial width obeys min_width too


def test_an_optimiser_step_moves_every_parameter_kind():
    generator = make(size=(32, 32), strokes=8, radius=0.4, init_width=3.0)
    optimizer = torch.optim.Adam(generator.param_groups(1.0))
    before = [p.detach().clone() for p in generator.parameters()]
    target = torch.zeros(1, 3, 32, 32)
    loss = (generator() - target).square().mean()
    loss.backward()
    optimizer.step()
    generator.after_step(1)
    for old, new in zip(before, generator.parameters()):
        assert not torch.equal(old, new)


def test_svg_has_every_stroke_and_the_background():
    generator = make(background="#102030", segments=2)
    root = ET.fromstring(generator.to_svg())
    assert root.get("width") == "48" and root.get("height") == "32"
    assert root.find(f"{SVG}rect").get("fill") == "#102030"
    paths = root.findall(f"{SVG}path")
    assert len(paths) == 12 and all(p.get("d").count("C") == 2 for p in paths)
    assert all(p.get("stroke-linecap") == "round" for p in paths)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"background": "whit"}, "clipdraw.background: 'whit' is not a colour"),
        ({"background": "#12345"}, "#rrggbb"),
        ({"min_width": 10.0, "max_width": 5.0}, "lower min_width or raise max_width"),
    ],
)
def test_bad_options_raise_settings_errors(options, message):
    with pytest.raises(SettingsError, match=message):
        ClipDrawOptions(**options)


def test_set_assignments_are_validated():
    settings = resolve_run_settings(flags={"generator": "clipdraw"},
                                    assignments=["clipdraw.strokes=16", "clipdraw.background=#fff"])
    assert settings.options.strokes == 16 and settings.options.background == "#fff"
    with pytest.raises(SettingsError, match="clipdraw.segments"):
        resolve_run_settings(flags={"generator": "clipdraw"}, assignments=["clipdraw.segments=9"])
    with pytest.raises(SettingsError, match="not a colour"):
        resolve_run_settings(flags={"generator": "clipdraw"}, assignments=["clipdraw.background=nope"])


def test_preset_resolves():
    settings = resolve_run_settings(preset=str(PRESET))
    assert settings.generator == "clipdraw" and settings.size == (224, 224)
    assert settings.options == ClipDrawOptions(strokes=256)
    assert resolve_run_settings(preset="clipdraw").options.strokes == 256


# --- end to end -------------------------------------------------------------------------


def test_generate_end_to_end(tiny_clip, tmp_path):
    import clipgen

    result = clipgen.generate(
        "a red apple", generator="clipdraw", clip=[tiny_clip], size=(64, 64), steps=20, cutn=8,
        seed=0, out=str(tmp_path), save_every=5, clipdraw={"strokes": 16},
    )
    assert result.image.size == (64, 64)
    assert all(math.isfinite(h["loss"]) for h in result.history) and len(result.history) == 20
    assert result.final_similarity > result.initial_similarity
    svg = Path(result.paths["svg"])
    assert svg.is_file() and svg.parent == Path(result.paths["folder"])
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg" and len(root.findall(f"{SVG}path")) == 16
    assert Path(result.paths["image"]).is_file() and len(result.paths["frames"]) >= 4


def test_masked_clipdraw_still_writes_its_svg(tiny_clip, tmp_path):
    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "init.png")
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (8, 8, 24, 24))
    mask.save(tmp_path / "mask.png")
    result = clipgen.generate(
        "a red apple", generator="clipdraw", clip=[tiny_clip], size=(32, 32), steps=2, cutn=2, seed=0,
        out=str(tmp_path / "out"), save_every=0, clipdraw={"strokes": 5},
        init_image=str(tmp_path / "init.png"), mask=str(tmp_path / "mask.png"),
    )
    root = ET.parse(result.paths["svg"]).getroot()
    assert root.tag == f"{SVG}svg" and len(root.findall(f"{SVG}path")) == 5


def test_a_masked_generator_has_only_the_capabilities_of_the_one_inside():
    init, mask = torch.zeros(1, 3, 32, 48), torch.ones(1, 1, 32, 48)
    assert isinstance(mask_generator(make(), init, mask), VectorGraphic)
    pixels = PixelGenerator((48, 32), PixelOptions(), CPU)
    assert not isinstance(mask_generator(pixels, init, mask), VectorGraphic)


def test_cli_writes_png_and_svg(run_cli, tiny_clip, tmp_path):
    code, out, err = run_cli(["generate", "a red apple", "--generator", "clipdraw", "--clip", tiny_clip,
                              "--size", "64x64", "--steps", "20", "--cutn", "8", "--seed", "0",
                              "--set", "clipdraw.strokes=16", "--out", tmp_path, "-q", "--json"])
    assert code == 0, err
    folder = tmp_path / "a-red-apple"
    root = ET.parse(folder / "a-red-apple.svg").getroot()
    assert root.get("width") == "64" and len(root.findall(f"{SVG}path")) == 16
    summary = json.loads(out)
    assert summary["final_similarity"] > summary["initial_similarity"]


def test_cli_rejects_a_bad_background_in_one_line(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a red apple", "--generator", "clipdraw", "--clip", tiny_clip,
                            "--set", "clipdraw.background=blurple", "--out", tmp_path])
    assert code == 2
    assert "clipdraw.background" in err and "#rrggbb" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written
