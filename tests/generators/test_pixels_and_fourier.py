"""The pixel and Fourier generators: shapes, ranges, gradients, starting from an image."""

import pytest
import torch

from clipgen.errors import SettingsError
from clipgen.generators import generator_names, get_generator_class
from clipgen.generators.base import EncodesImages, GeneratorContext

CPU = GeneratorContext(device=torch.device("cpu"))


@pytest.mark.parametrize("name", ["pixels", "fourier"])
def test_output_shape_range_and_gradients(name):
    cls = get_generator_class(name)
    torch.manual_seed(0)
    generator = cls((40, 24), cls.Options(), CPU)
    image = generator()
    assert image.shape == (1, 3, 24, 40)
    assert image.min() >= 0 and image.max() <= 1
    image.mean().backward()
    grads = [p.grad for p in generator.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["pixels", "fourier"])
def test_init_from_image_reproduces_the_image(name):
    cls = get_generator_class(name)
    generator = cls((32, 16), cls.Options(), CPU)
    assert isinstance(generator, EncodesImages)
    target = torch.rand(1, 3, 16, 32) * 0.9 + 0.05
    generator.init_from_image(target)
    assert torch.allclose(generator(), target, atol=1e-4)


def test_fourier_decay_smooths_the_start_image():
    cls = get_generator_class("fourier")
    torch.manual_seed(0)
    rough = cls((64, 64), cls.Options(decay=0.0, init_std=1.0), CPU)()
    torch.manual_seed(0)
    smooth = cls((64, 64), cls.Options(decay=2.0, init_std=1.0), CPU)()

    def roughness(img):
        return (img[..., 1:] - img[..., :-1]).abs().mean()

    assert roughness(smooth) < roughness(rough)


def test_unknown_generator_lists_names():
    with pytest.raises(SettingsError, match="unknown generator 'fourrier'; did you mean 'fourier'"):
        get_generator_class("fourrier")
    assert {"pixels", "fourier"} <= set(generator_names())
