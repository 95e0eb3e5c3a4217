"""--init-search: the best of N random starts by an augmented CLIP score."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import clipgen
from clipgen.generators.base import Generator
from clipgen.guidance.cutouts import Cutouts
from clipgen.guidance.objective import encode_targets
from clipgen.guidance.perceptor import load_perceptor
from clipgen.run import starts
from clipgen.run.starts import search_start, start_seed

CPU = torch.device("cpu")


class FlatGrey(Generator):
    """A flat grey image whose brightness is the one random number a start draws."""

    def __init__(self):
        super().__init__((32, 32), None, None)
        self.level = torch.nn.Parameter(torch.zeros(()))

    @torch.no_grad()
    def random_start(self) -> None:
        self.level.copy_(torch.rand(()))

    def forward(self) -> torch.Tensor:
        return self.level.expand(1, 3, 32, 32)


def _level_of_start(seed: int, index: int) -> float:
    torch.manual_seed(start_seed(seed, index))
    return float(torch.rand(()))


@pytest.fixture(scope="module")
def perceptor(tiny_clip):
    return load_perceptor((tiny_clip,), CPU, offline=True)


def _planted_targets(perceptor, level: float):
    from clipgen.outputs.images import tensor_to_pil

    image = tensor_to_pil(torch.full((1, 3, 32, 32), level))
    return encode_targets(perceptor, [], [(image, 1.0)])


def test_the_search_picks_the_start_clip_scores_highest(perceptor):
    planted = 5
    targets = _planted_targets(perceptor, _level_of_start(3, planted))
    generator = FlatGrey()
    found = search_start(generator, perceptor, Cutouts(4, 1.0, perceptor.input_sizes), targets,
                         count=12, views=4, seed=3)
    assert found.chosen == planted
    assert found.losses[planted] == min(found.losses) and len(found.losses) == 12
    assert float(generator.level) == pytest.approx(_level_of_start(3, planted))


def test_the_search_is_deterministic_batched_and_leaves_the_run_stream_alone(perceptor, monkeypatch):
    targets = _planted_targets(perceptor, 0.3)
    model = perceptor.models[0]
    calls = []
    encode = model.encode_image
    monkeypatch.setattr(model, "encode_image", lambda x: calls.append(len(x)) or encode(x))
    cutouts = Cutouts(3, 1.0, perceptor.input_sizes, ("affine", "noise"))
    torch.manual_seed(99)
    first = search_start(FlatGrey(), perceptor, cutouts, targets, count=10, views=3, seed=8)
    after_search = float(torch.rand(()))
    second = search_start(FlatGrey(), perceptor, cutouts, targets, count=10, views=3, seed=8)
    assert first == second and len(set(first.losses)) == 10
    torch.manual_seed(99)
    assert after_search == float(torch.rand(()))  # the search drew nothing from the caller's stream
    # One image-tower forward per chunk of starts: 8 + 2 starts × 3 views, per search.
    assert calls == [starts.CHUNK * 3, 2 * 3] * 2


def test_a_run_with_init_search_records_it_and_starts_better(tiny_clip, tmp_path):
    kwargs = dict(clip=[tiny_clip], size=(32, 32), cutn=2, generator="pixels", seed=4, steps=2,
                  augment=["noise"], save_every=0)
    plain = clipgen.generate("a red apple", out=str(tmp_path / "a"), **kwargs)
    searched = clipgen.generate("a red apple", out=str(tmp_path / "b"), init_search=16, **kwargs)
    record = json.loads(Path(searched.paths["run_json"]).read_text())["start_search"]
    assert record["starts"] == 16 and record["chosen_loss"] == min(record["losses"])
    assert "start_search" not in json.loads(Path(plain.paths["run_json"]).read_text())
    assert searched.initial_similarity != plain.initial_similarity


def test_an_init_image_replaces_the_search(tiny_clip, tmp_path):
    from PIL import Image

    Image.new("RGB", (32, 32), (10, 200, 10)).save(tmp_path / "start.png")
    result = clipgen.generate("a fox", clip=[tiny_clip], generator="pixels", size=(32, 32), cutn=2, steps=1,
                              init_image=str(tmp_path / "start.png"), init_search=8, save_every=0,
                              out=str(tmp_path / "o"))
    record = json.loads(Path(result.paths["run_json"]).read_text())
    assert "start_search" not in record and record["settings"]["init_search"] == 0
    # One step from the init image: still nearly its green, not a searched start's colours.
    pixels = torch.tensor(list(result.image.getdata()), dtype=torch.float32).mean(0)
    assert pixels[1] > 150 and pixels[0] < 60 and pixels[2] < 60


def test_mix_weights_favour_the_lowest_losses_and_sum_to_one():
    from clipgen.run.starts import mix_weights

    mixed = mix_weights([0.9, 0.5, 0.7, 0.6, 1.2], 3)
    assert [i for i, _ in mixed] == [1, 3, 2]
    weights = [w for _, w in mixed]
    assert sum(weights) == pytest.approx(1.0) and weights[0] > weights[1] > weights[2] > 0
    # The weighting is scale-free: the same losses times 10 give the same weights.
    assert [w for _, w in mix_weights([9.0, 5.0, 7.0, 6.0, 12.0], 3)] == pytest.approx(weights)
    assert [w for _, w in mix_weights([0.4, 0.4], 2)] == [0.5, 0.5]


def test_a_mixed_start_is_the_weighted_mean_of_the_best_starts(perceptor):
    targets = _planted_targets(perceptor, 0.5)
    generator = FlatGrey()
    found = search_start(generator, perceptor, Cutouts(4, 1.0, perceptor.input_sizes), targets,
                         count=10, views=4, seed=2, mix=3)
    assert len(found.mixed) == 3 and found.mixed[0][0] == found.chosen
    expected = sum(weight * _level_of_start(2, index) for index, weight in found.mixed)
    assert float(generator.level) == pytest.approx(expected, abs=1e-6)
    assert found.to_dict()["mixed"][0] == {"start": found.chosen, "weight": found.mixed[0][1]}


def test_a_mix_larger_than_the_search_is_one_line_and_exit_2(run_cli, tiny_clip, tmp_path):
    code, _, err = run_cli(["generate", "a fox", "--clip", tiny_clip, "--generator", "pixels", "--size", "32x32",
                            "--init-search", "2", "--set", "init_mix=4", "--out", str(tmp_path / "o")])
    assert code == 2 and "init_mix 4" in err and "--init-search" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_shape_image_is_a_flat_field_and_one_blob_of_another_colour_drawn_from_torchs_rng():
    from clipgen.run.starts import shape_image

    torch.manual_seed(7)
    image = shape_image(48, 64)
    torch.manual_seed(7)
    assert torch.equal(image, shape_image(48, 64))
    assert image.shape == (1, 3, 48, 64) and 0 <= float(image.min()) and float(image.max()) <= 1
    corners = image[0, :, [0, 0, -1, -1], [0, -1, 0, -1]].T  # the blob stays in the middle half, clear of them
    assert torch.allclose(corners, corners[:1].expand(4, 3), atol=1e-4)
    # Two colours and the one-pixel soft edge between them: most pixels are one or the other.
    pixels = image[0].flatten(1).T
    field_colour = corners[0]
    blob_colour = pixels[(pixels - field_colour).abs().amax(1).argmax()]
    field = (pixels - field_colour).abs().amax(1) < 1e-3
    blob = (pixels - blob_colour).abs().amax(1) < 1e-3
    assert field.float().mean() > 0.5 and blob.float().mean() > 0.02 and (field | blob).float().mean() > 0.9


def test_a_shape_start_search_leaves_the_generator_at_the_encoded_shape_of_the_chosen_start(perceptor):
    from clipgen.generators.pixels import PixelGenerator, PixelOptions
    from clipgen.generators.base import GeneratorContext
    from clipgen.run.starts import shape_image

    planted = 4
    torch.manual_seed(start_seed(11, planted))
    wanted = shape_image(32, 32)
    targets = encode_targets(perceptor, [], [(_pil(wanted), 1.0)])
    generator = PixelGenerator((32, 32), PixelOptions(), GeneratorContext(device=CPU))
    found = search_start(generator, perceptor, Cutouts(4, 1.0, perceptor.input_sizes), targets,
                         count=8, views=4, seed=11, shapes=True)
    assert found.chosen == planted
    assert torch.allclose(generator().detach(), wanted.clamp(1e-3, 1 - 1e-3), atol=1e-5)


def test_shape_starts_for_a_generator_that_cannot_start_from_an_image_is_one_line_and_exit_2(run_cli, tiny_clip,
                                                                                             tmp_path):
    code, _, err = run_cli(["generate", "a fox", "--clip", tiny_clip, "--generator", "clipdraw", "--size", "32x32",
                            "--init-search", "4", "--set", "init_search_shapes=true", "--out", str(tmp_path / "o")])
    assert code == 2 and "init_search_shapes" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def _pil(image: torch.Tensor):
    from clipgen.outputs.images import tensor_to_pil

    return tensor_to_pil(image)
