"""clipgen/guidance/augmentations.py: the cutout augmentations."""

import math

import torch

from clipgen.guidance.augmentations import LUMA, hue_rotation


def test_hue_rotation_turns_colours_about_the_grey_axis():
    third = hue_rotation(torch.tensor([2 * math.pi / 3]))[0]
    assert torch.allclose(third @ torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]), atol=1e-6)  # red -> green
    grey = torch.tensor([0.4, 0.4, 0.4])
    assert torch.allclose(hue_rotation(torch.tensor([0.7]))[0] @ grey, grey, atol=1e-6)
    assert torch.allclose(hue_rotation(torch.tensor([0.0]))[0], torch.eye(3))


def test_colour_jitter_moves_colours_within_its_spreads_and_keeps_gradients():
    from clipgen.guidance.augmentations import ColourJitter

    torch.manual_seed(0)
    x = torch.rand(64, 3, 8, 8, requires_grad=True)
    assert torch.equal(ColourJitter(0.5, 0.5, 0.5, 0.2, p=0.0)(x), x)  # never chosen
    assert torch.allclose(ColourJitter(0, 0, 0, 0, p=1.0)(x), x, atol=1e-6)  # no spread: unchanged
    out = ColourJitter(0.1, 0.1, 0.1, 0.05, p=1.0)(x)
    assert out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().amax((1, 2, 3))
    assert (changed > 1e-3).all() and changed.max() < 0.5
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def jitter_steps(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor,
                 hue: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """ColourJitter one step at a time, with its draws: what its single colour map must equal."""
    luma = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    per_cutout = lambda value: value.view(-1, 1, 1, 1)  # noqa: E731
    out = x * per_cutout(brightness)
    mean = (out * luma).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    out = mean + (out - mean) * per_cutout(contrast)
    grey = (out * luma).sum(1, keepdim=True)
    out = grey + (out - grey) * per_cutout(saturation)
    out = torch.einsum("nij,njhw->nihw", hue_rotation(hue), out)
    return torch.where(chosen, out.clamp(0, 1), x)


def test_colour_jitter_is_its_four_steps_composed_into_one_colour_map():
    from clipgen.guidance.augmentations import ColourJitter

    jitter = ColourJitter(0.3, 0.3, 0.3, 0.1, p=0.7)
    x = torch.rand(16, 3, 9, 7, dtype=torch.float64, requires_grad=True)
    torch.manual_seed(3)
    fused = jitter(x)
    torch.manual_seed(3)
    draws = jitter.draw(x)
    stepwise = jitter_steps(x, *draws)
    assert draws[-1].any() and not draws[-1].all()  # some cutouts jittered, some left alone
    assert torch.allclose(fused, stepwise, atol=1e-12)
    upstream = torch.randn_like(x)
    (fused_grad,) = torch.autograd.grad(fused, x, upstream)
    (stepwise_grad,) = torch.autograd.grad(stepwise, x, upstream)
    assert torch.allclose(fused_grad, stepwise_grad, atol=1e-12)


def test_warp_resamples_through_the_inverse_map_and_keeps_the_border():
    from clipgen.guidance.augmentations import warp

    torch.manual_seed(0)
    x = torch.rand(2, 3, 10, 14)
    assert torch.allclose(warp(x, torch.eye(3).expand(2, 3, 3)), x, atol=1e-5)
    shift = torch.eye(3).repeat(2, 1, 1)
    shift[:, 0, 2], shift[:, 1, 2] = 3, 2  # content moves 3 right and 2 down
    moved = warp(x, shift)
    assert torch.allclose(moved[:, :, 2:, 3:], x[:, :, :-2, :-3], atol=1e-5)
    assert torch.allclose(moved[:, :, 0, 0], x[:, :, 0, 0], atol=1e-5)  # outside: the border continued
    mirror = torch.tensor([[-1.0, 0, 13], [0, 1, 0], [0, 0, 1]]).expand(2, 3, 3)  # x -> 13 - x
    assert torch.allclose(warp(x, mirror), x.flip(-1), atol=1e-5)


def test_homography_takes_four_points_to_four_points():
    from clipgen.guidance.augmentations import homography

    source = torch.tensor([[[0.0, 0], [9, 0], [9, 9], [0, 9]]])
    target = torch.tensor([[[1.0, 2], [8, 1], [9, 7], [0.5, 9]]])
    matrix = homography(source, target)
    mapped = torch.cat([source, torch.ones(1, 4, 1)], -1) @ matrix.transpose(1, 2)
    assert torch.allclose(mapped[..., :2] / mapped[..., 2:], target, atol=1e-4)


def test_affine_and_perspective_are_one_warp_in_the_place_of_the_first():
    from clipgen.guidance.augmentations import ColourJitter, RandomWarp, augmentation_modules

    modules = augmentation_modules(["jitter", "perspective", "flip", "affine"])
    assert [type(m).__name__ for m in modules] == ["ColourJitter", "RandomWarp", "RandomHorizontalFlip"]
    assert modules[1].affine and modules[1].perspective
    only = augmentation_modules(["affine"])[0]
    assert isinstance(only, RandomWarp) and only.affine and not only.perspective
    assert not isinstance(only, ColourJitter)


def test_random_warp_draws_within_its_ranges_and_leaves_unchosen_cutouts_alone():
    from clipgen.guidance.augmentations import RandomWarp

    torch.manual_seed(0)
    warp = RandomWarp(affine=True, perspective=True)
    affine = warp.draw_affine(500, 40, 60, torch.device("cpu"))
    angle = torch.rad2deg(torch.atan2(affine[:, 1, 0], affine[:, 0, 0]))
    assert angle.abs().max() <= 15 and angle.abs().max() > 10
    untouched = (affine - torch.eye(3)).abs().amax((1, 2)) == 0
    assert 0.2 < untouched.float().mean() < 0.4  # p = 0.7
    perspective = warp.draw_perspective(500, 40, 60, torch.device("cpu"))
    corners = torch.tensor([[0.0, 0, 1], [59, 0, 1], [59, 39, 1], [0, 39, 1]])
    mapped = corners @ perspective.transpose(1, 2)
    moved = mapped[..., :2] / mapped[..., 2:] - corners[:, :2]
    inwards = torch.tensor([[1.0, 1], [-1, 1], [-1, -1], [1, -1]])
    assert (moved * inwards >= -1e-3).all()  # never outwards
    assert (moved.abs() <= torch.tensor([5.9, 3.9]) + 1e-3).all()  # up to 10% of the size
    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(RandomWarp(True, True, p_affine=0, p_perspective=0)(x), x, atol=1e-5)


def _noise_at(threads: int, seed: int) -> torch.Tensor:
    from clipgen.guidance.augmentations import cpu_noise

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        return cpu_noise(torch.empty(6, 3, 40, 40))
    finally:
        torch.set_num_threads(previous)


def test_split_cpu_noise_is_standard_normal_and_the_same_at_any_thread_count():
    one, two = _noise_at(1, seed=0), _noise_at(2, seed=0)
    assert torch.equal(one, two)  # a seed makes the same image at any --threads
    assert torch.equal(_noise_at(2, seed=0), two) and not torch.equal(_noise_at(2, seed=1), two)
    assert not torch.allclose(two[:3], two[3:])  # the halves come from different generators
    assert abs(two.mean().item()) < 0.02 and abs(two.std().item() - 1) < 0.02


def test_cutout_noise_of_a_large_batch_draws_the_split_noise(monkeypatch):
    import clipgen.guidance.augmentations as augmentations

    x = torch.rand(6, 3, 40, 40)
    monkeypatch.setattr(augmentations, "NOISE_SPLIT_AT", x.numel())
    torch.manual_seed(3)
    out = augmentations.CutoutNoise(max_std=0.1)(x)
    torch.manual_seed(3)
    strength = torch.rand(6, 1, 1, 1) * 0.1
    assert torch.equal(out, x + strength * augmentations.cpu_noise(x))
    monkeypatch.setattr(augmentations, "NOISE_SPLIT_AT", x.numel() + 1)
    torch.manual_seed(3)
    out = augmentations.CutoutNoise(max_std=0.1)(x)
    torch.manual_seed(3)
    strength = torch.rand(6, 1, 1, 1) * 0.1
    assert torch.equal(out, x + strength * torch.randn_like(x))  # below the size: one draw, as before
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(augmentations.CutoutNoise(max_std=0.1)(x), x, torch.full_like(x, 3.0))
    assert torch.equal(grad, torch.full_like(x, 3.0))  # noise is added: the gradient passes unchanged
