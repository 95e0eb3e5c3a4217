"""The generator contract (clipgen.generators.base), checked for every registered generator.

The list comes from the registry, so a new generator is covered by its registry line.
Generators with weights run on the tiny real-format checkpoints of ``tests/conftest.py``
(skipped, with the reason, when their extra is missing); one that needs weights the
fixtures do not know fails until ``fixtures.TINY_OPTIONS`` says how to build it.
"""

from __future__ import annotations

import dataclasses
import io
import xml.etree.ElementTree as ET

import pytest
import torch
import torch.nn.functional as F
from fixtures import tiny_options

from clipgen.errors import MissingWeightsError
from clipgen.generators import generator_names, get_generator_class
from clipgen.generators.base import (EncodesImages, Generator, GeneratorContext, RandomStarts, Regularized,
                                    VectorGraphic)
from clipgen.generators.masked import mask_generator
from clipgen.generators.pixels import PixelGenerator, PixelOptions
from clipgen.run.loop import PlainLoss, optimize
from clipgen.run.state import load_trainable_state, trainable_state

CPU = GeneratorContext(device=torch.device("cpu"), offline=True, steps=4)
SIZE = (32, 16)  # (width, height): a multiple of every downsampling factor in use, and not square
CAPABILITIES = (EncodesImages, Regularized, VectorGraphic, RandomStarts)

def _having(capability) -> list[str]:
    return [name for name in generator_names() if issubclass(get_generator_class(name), capability)]


def _options(name: str, request):
    return get_generator_class(name).Options(**tiny_options(request, name))


@pytest.fixture(params=generator_names())
def make(request):
    """``make(seed) -> Generator``: the parametrised generator, built after seeding torch."""
    name = request.param
    cls = get_generator_class(name)
    options = _options(name, request)

    def build(seed: int = 0) -> Generator:
        torch.manual_seed(seed)
        try:
            return cls(SIZE, options, CPU)
        except MissingWeightsError as exc:
            pytest.fail(f"{name} needs weights: add tiny ones to TINY_OPTIONS in tests/fixtures ({exc})")

    return build


def _image(generator: Generator) -> torch.Tensor:
    with torch.no_grad():
        return generator().detach()


def _trainable(generator: Generator) -> list[torch.Tensor]:
    return [p for p in generator.parameters() if p.requires_grad]


def _push_out_of_range(generator: Generator) -> None:
    with torch.no_grad():
        for p in _trainable(generator):
            noise = torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
            p.mul_(50).add_(noise.to(p) * 50)


def _weighted_sum(image: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient has no symmetry for parameters to hide in."""
    weights = torch.randn(image.shape, generator=torch.Generator().manual_seed(7))
    return (image * weights).sum()


# --------------------------------------------------------------------------- declarations


def test_declarations(make):
    cls = type(make())
    assert "__doc__" in vars(cls) and cls.__doc__.strip().splitlines()[0], "the first docstring line describes it"
    assert cls.default_lr > 0 and cls.memory_factor > 0
    assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen
    assert all(f.metadata.get("help") for f in dataclasses.fields(cls.Options)), "every option has help"


# --------------------------------------------------------------------------- hooks


def test_output_is_one_finite_image_in_range(make):
    image = make()()
    assert image.shape == (1, 3, SIZE[1], SIZE[0]) and image.dtype == torch.float32
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


def test_gradient_reaches_every_parameter_in_param_groups(make):
    generator = make()
    groups = generator.param_groups(0.1)
    grouped = [p for group in groups for p in group["params"]]
    assert all(group["lr"] > 0 for group in groups)
    assert {id(p) for p in grouped} == {id(p) for p in _trainable(generator)}, "every trainable parameter, once"
    assert len(grouped) == len({id(p) for p in grouped})
    _weighted_sum(generator()).backward()
    for p in grouped:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_after_step_projects_and_leaves_valid_parameters_alone(make):
    generator = make()
    fresh = [p.detach().clone() for p in _trainable(generator)]
    generator.after_step(0)  # what the loop does before the first step: a fresh start is already valid
    assert all(torch.equal(a, p) for a, p in zip(fresh, _trainable(generator)))
    _push_out_of_range(generator)
    generator.after_step(1)
    projected = [p.detach().clone() for p in _trainable(generator)]
    assert all(torch.isfinite(p).all() for p in projected)
    generator.after_step(1)
    assert all(torch.equal(a, p) for a, p in zip(projected, _trainable(generator))), "a projection is idempotent"
    image = _image(generator)
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1


def test_a_seed_reproduces_the_image(make):
    first = _image(make(seed=3))
    assert torch.equal(_image(make(seed=3)), first)
    assert not torch.equal(_image(make(seed=4)), first)


def test_trainable_state_round_trips_through_a_checkpoint(make):
    trained = make(seed=1)
    optimizer = torch.optim.Adam(trained.param_groups(0.05))
    done = optimize(trained, PlainLoss(_weighted_sum), optimizer, steps=2)
    buffer = io.BytesIO()
    torch.save(trainable_state(trained), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # what state.pt must be loadable with
    assert {name for name, p in trained.named_parameters() if p.requires_grad} <= set(state)
    resumed = make(seed=2)
    load_trainable_state(resumed, state)
    resumed.after_step(done)  # as the loop does when a resumed run starts
    assert torch.equal(_image(resumed), _image(trained))


# --------------------------------------------------------------------------- capabilities


@pytest.mark.parametrize("make", _having(EncodesImages), indirect=True)
def test_init_from_image_gets_closer_than_the_random_start(make):
    generator = make(seed=5)
    assert isinstance(generator, EncodesImages)
    # Tiny random-weight models cannot encode any image, so the target is one the generator
    # makes again: a few rounds of init_from_image(forward()) from its own picture.
    with torch.no_grad():
        target = generator()
        for _ in range(3):
            generator.init_from_image(target)
            target = generator()
    start = make(seed=6)
    before = F.mse_loss(_image(start), target).item()
    with torch.no_grad():  # callers may hold no_grad
        start.init_from_image(target)
    assert F.mse_loss(_image(start), target).item() < before


@pytest.mark.parametrize("make", _having(Regularized), indirect=True)
def test_regularization_loss_is_a_finite_scalar_with_a_gradient(make):
    generator = make()
    assert isinstance(generator, Regularized)
    loss = generator.regularization_loss()
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in _trainable(generator))


@pytest.mark.parametrize("make", _having(VectorGraphic), indirect=True)
def test_to_svg_is_an_svg_document_of_the_canvas(make):
    generator = make()
    assert isinstance(generator, VectorGraphic)
    root = ET.fromstring(generator.to_svg())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert (root.get("width"), root.get("height")) == (str(SIZE[0]), str(SIZE[1]))


def test_the_mask_wrapper_has_exactly_the_inner_capabilities(make):
    inner = make()
    init = torch.full((1, 3, SIZE[1], SIZE[0]), 0.25)
    mask = torch.zeros(1, 1, SIZE[1], SIZE[0])
    mask[..., 4:12, 8:24] = 1.0
    masked = mask_generator(inner, init, mask)
    for capability in CAPABILITIES:
        assert isinstance(masked, capability) == isinstance(inner, capability), capability.__name__
    for declaration in ("default_lr", "memory_factor", "Options"):  # what a run reads from type(generator)
        assert getattr(type(masked), declaration) == getattr(type(inner), declaration)
    image = _image(masked)
    assert torch.equal(image * (1 - mask), init * (1 - mask))
    assert torch.equal(image * mask, _image(inner) * mask)
    assert [p for g in masked.param_groups(0.1) for p in g["params"]] == \
        [p for g in inner.param_groups(0.1) for p in g["params"]]
    trained = {f"inner.{name}" for name, p in inner.named_parameters() if p.requires_grad}
    assert trained <= set(trainable_state(masked))  # what resuming a masked run restores
    if isinstance(inner, VectorGraphic):
        assert masked.to_svg() == inner.to_svg()
    if isinstance(inner, Regularized):
        assert torch.equal(masked.regularization_loss(), inner.regularization_loss())
    _push_out_of_range(inner)
    expected = make()
    _push_out_of_range(expected)
    masked.after_step(1)
    expected.after_step(1)
    assert all(torch.equal(a, b) for a, b in zip(_trainable(inner), _trainable(expected))), "after_step forwarded"


# --------------------------------------------------------------------------- when the loop calls after_step


class _Recording(PixelGenerator):
    """Pixels that note every after_step call."""

    def __init__(self):
        super().__init__((4, 4), PixelOptions(), CPU)
        self.told: list[int] = []

    def after_step(self, step: int) -> None:
        self.told.append(step)


def test_the_loop_tells_after_step_the_finished_step_on_start_resume_and_rewind():
    generator = _Recording()
    calls = []

    def objective(image):  # the 2nd step of this call goes NaN once
        calls.append(len(calls))
        return image.sum() * (float("nan") if len(calls) == 2 else 1.0)

    optimizer = torch.optim.Adam(generator.param_groups(0.1))
    assert optimize(generator, PlainLoss(objective), optimizer, steps=5, start_step=2) == 5
    # before step 3; steps 3, 4 (NaN); the rewind back to 3; steps 4 and 5 again
    assert generator.told == [2, 3, 4, 3, 4, 5]


# --------------------------------------------------------------------------- random starts


@pytest.mark.parametrize("name", _having(RandomStarts))
def test_random_start_is_a_new_valid_start_drawn_from_torchs_rng(name, request):
    cls = get_generator_class(name)
    torch.manual_seed(0)
    generator = cls(SIZE, _options(name, request), CPU)
    first = _image(generator)
    starts = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        generator.random_start()
        starts.append(_image(generator))
    image = starts[0]
    assert torch.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert torch.equal(starts[0], starts[1]), "a seed gives the same start"
    assert not torch.equal(starts[0], starts[2]) and not torch.equal(starts[0], first)
