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


def test_pixel_cells_optimise_a_coarser_grid_and_upsample_it():
    cls = get_generator_class("pixels")
    torch.manual_seed(0)
    generator = cls((40, 24), cls.Options(cell=8), CPU)
    assert generator.logits.shape == (1, 3, 3, 5)  # 24/8 × 40/8
    image = generator()
    assert image.shape == (1, 3, 24, 40)
    # Bilinear upsampling: neighbouring pixels inside a cell differ far less than in noise.
    fine = cls((40, 24), cls.Options(), CPU)()
    assert (image[..., 1:] - image[..., :-1]).abs().mean() < 0.2 * (fine[..., 1:] - fine[..., :-1]).abs().mean()
    image.mean().backward()
    assert generator.logits.grad.abs().sum() > 0


def test_pixel_cells_round_up_and_start_from_an_image_at_cell_resolution():
    cls = get_generator_class("pixels")
    generator = cls((30, 20), cls.Options(cell=4), CPU)
    assert generator.logits.shape == (1, 3, 5, 8)
    flat = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1).expand(1, 3, 20, 30)
    generator.init_from_image(flat)
    assert torch.allclose(generator(), flat, atol=1e-4)


def test_one_pixel_cells_are_todays_generator():
    cls = get_generator_class("pixels")
    torch.manual_seed(0)
    today = cls((16, 16), cls.Options(), CPU)
    torch.manual_seed(0)
    ones = cls((16, 16), cls.Options(cell=1), CPU)
    assert torch.equal(today(), ones()) and today.logits.shape == (1, 3, 16, 16)


def test_a_palette_image_uses_only_mixes_of_its_colours_and_trains_both():
    cls = get_generator_class("pixels")
    torch.manual_seed(0)
    generator = cls((16, 16), cls.Options(palette=2, init_std=3.0), CPU)
    assert generator.logits.shape == (1, 2, 16, 16) and generator.colors.shape == (2, 3)
    image = generator()
    first, second = torch.sigmoid(generator.colors).detach()
    # Every pixel lies on the segment between the two colours.
    t = ((image[0].permute(1, 2, 0) - second) @ (first - second)) / (first - second).square().sum()
    on_segment = second + t[..., None] * (first - second)
    assert torch.allclose(image[0].permute(1, 2, 0), on_segment, atol=1e-5)
    image.square().mean().backward()
    assert generator.logits.grad.abs().sum() > 0 and generator.colors.grad.abs().sum() > 0


def test_a_palette_generator_reproduces_an_image_of_that_many_colours():
    cls = get_generator_class("pixels")
    generator = cls((24, 24), cls.Options(palette=2), CPU)
    target = torch.tensor([0.9, 0.1, 0.1]).view(1, 3, 1, 1).repeat(1, 1, 24, 24)
    target[..., 6:14, 8:18] = torch.tensor([0.1, 0.2, 0.8]).view(1, 3, 1, 1)
    generator.init_from_image(target)
    assert torch.allclose(generator(), target, atol=1e-3)


def test_random_palette_starts_redraw_the_colours():
    cls = get_generator_class("pixels")
    torch.manual_seed(0)
    generator = cls((16, 16), cls.Options(palette=3), CPU)
    before = generator.colors.detach().clone()
    generator.random_start()
    assert generator.colors.shape == (3, 3) and not torch.equal(before, generator.colors)


def test_a_band_limited_fourier_image_has_nothing_above_its_highest_frequency():
    cls = get_generator_class("fourier")
    torch.manual_seed(0)
    generator = cls((64, 64), cls.Options(init_std=1.0, max_freq=0.125, decorrelate=False), CPU)
    image = generator()
    # Before the sigmoid the image is a sum of frequencies up to 1/8 cycle per pixel.
    spectrum = torch.fft.rfft2(torch.logit(image.double()), norm="ortho").abs()
    fy = torch.fft.fftfreq(64).abs()[:, None]
    fx = torch.fft.rfftfreq(64)[None, :]
    above = (fy > 0.125) | (fx > 0.125)
    assert spectrum[..., above].max() < 1e-6 * spectrum[..., ~above].max()
    image.mean().backward()
    grad = generator.spectrum.grad.abs().sum(-1)[0]  # (3, H, W//2+1)
    assert grad[:, above].max() == 0 and grad[:, ~above].max() > 0


def test_a_band_limited_fourier_start_keeps_the_image_below_its_highest_frequency():
    cls = get_generator_class("fourier")
    torch.manual_seed(0)
    fy = torch.fft.fftfreq(32).abs()[:, None]
    fx = torch.fft.rfftfreq(32)[None, :]
    low = torch.randn(1, 3, 32, 17, dtype=torch.complex64) * ((fy <= 0.25) & (fx <= 0.25))
    logits = torch.fft.irfft2(low, s=(32, 32), norm="ortho")
    smooth = torch.sigmoid(logits / logits.std())
    limited = cls((32, 32), cls.Options(max_freq=0.25, decorrelate=False), CPU)
    limited.init_from_image(smooth)
    assert torch.allclose(limited(), smooth, atol=1e-4)

    noisy = torch.rand(1, 3, 32, 32) * 0.9 + 0.05
    limited.init_from_image(noisy)  # detail above the limit is dropped, not divided by zero
    assert torch.isfinite(limited.spectrum).all()
    assert 0.02 < (limited() - noisy).abs().mean() < (noisy - 0.5).abs().mean()
