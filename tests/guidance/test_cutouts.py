"""Cutouts: crop boxes, resampling, the cut schedule."""

import pytest
import torch

from clipgen.errors import SettingsError
from clipgen.guidance.cutouts import Cutouts, crop_and_resize, crop_boxes


def test_boxes_fit_inside_the_image_and_respect_min_size():
    torch.manual_seed(0)
    boxes = crop_boxes(200, 1.0, height=50, width=80, min_size=32)
    sides = boxes[:, 2] - boxes[:, 0]
    assert torch.equal(sides, boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= 32 and sides.max() <= 50
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 80
    assert boxes[:, 1].min() >= 0 and boxes[:, 3].max() <= 50


def test_cut_pow_makes_cutouts_smaller():
    torch.manual_seed(0)
    small = crop_boxes(500, 4.0, 128, 128, min_size=16)
    large = crop_boxes(500, 0.25, 128, 128, min_size=16)
    assert (small[:, 2] - small[:, 0]).float().mean() < (large[:, 2] - large[:, 0]).float().mean()


def test_whole_image_crop_of_constant_image_is_constant():
    image = torch.full((1, 3, 40, 40), 0.25)
    out = crop_and_resize(image, torch.tensor([[0.0, 0.0, 40.0, 40.0]]), 16)
    assert out.shape == (1, 3, 16, 16)
    assert torch.allclose(out, torch.full_like(out, 0.25), atol=1e-6)


def test_cutouts_shapes_per_model_size_and_range():
    torch.manual_seed(0)
    cutouts = Cutouts(cutn=6, cut_pow=1.0, sizes=(32, 24, 32), augment=("affine", "jitter"))
    views = cutouts(torch.rand(1, 3, 64, 48))
    assert set(views) == {32, 24}
    assert views[32].shape == (6, 3, 32, 32)
    assert views[24].shape == (6, 3, 24, 24)
    # geometric and colour augmentations keep values in range (noise is what may leave it)
    assert views[32].min() >= -1e-4 and views[32].max() <= 1 + 1e-4


def test_cutouts_are_differentiable():
    image = torch.rand(1, 3, 48, 48, requires_grad=True)
    views = Cutouts(4, 1.0, (16,), ("affine", "perspective", "noise"))(image)
    views[16].sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


def test_unknown_augmentation_lists_valid_names():
    with pytest.raises(SettingsError, match="unknown augmentation 'blurr'.*affine"):
        Cutouts(4, 1.0, (16,), ("blurr",))


@pytest.mark.parametrize("side, cutn, min_size, size, cut_pow", [(256, 12, 224, 224, 1.0), (300, 6, 50, 64, 2.0),
                                                                  (64, 4, 64, 64, 1.0), (97, 5, 20, 32, 0.5)])
def test_crop_and_resize_is_roi_align_as_two_matrix_products(side, cutn, min_size, size, cut_pow):
    """The separable form gives torchvision's aligned, adaptive-ratio roi_align, values and gradients."""
    from torchvision.ops import roi_align

    image = torch.rand(1, 3, side, side + 3, requires_grad=True)
    boxes = crop_boxes(cutn, cut_pow, side, side + 3, min_size, torch.Generator().manual_seed(side))
    rois = torch.cat([torch.zeros(cutn, 1), boxes], dim=1)
    reference = roi_align(image, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    ours = crop_and_resize(image, boxes, size)
    assert ours.shape == reference.shape and ours.is_contiguous()
    assert torch.allclose(ours, reference, atol=1e-4)  # float rounding: the sums run in another order
    upstream = torch.randn_like(reference)
    (want,) = torch.autograd.grad(reference, image, upstream)
    (got,) = torch.autograd.grad(ours, image, upstream)
    assert torch.allclose(got, want, atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("text, message", [
    ("overview:0-40", "expected KIND:START-END%"),
    ("zoom:0-40%", "unknown kind 'zoom'"),
    ("inner:50-40%", "START < END <= 100"),
    ("overview:0-60%,inner:50-100%", "overlap"),
])
def test_bad_cut_schedules_name_the_problem(text, message):
    from clipgen.errors import SettingsError
    from clipgen.guidance.cutouts import parse_cut_schedule

    with pytest.raises(SettingsError, match=message):
        parse_cut_schedule(text)


def test_cut_schedule_phases_and_the_steps_they_leave_to_inner_cuts():
    from clipgen.guidance.cutouts import CutPhase, overview_share, parse_cut_schedule

    phases = parse_cut_schedule(" inner:60-100% , overview:0-30%")
    assert phases == (CutPhase("overview", 0.0, 0.3), CutPhase("inner", 0.6, 1.0))
    assert [overview_share(phases, f) for f in (0.0, 0.29, 0.3, 0.5, 0.99)] == [1.0, 1.0, 0.0, 0.0, 0.0]


def test_overview_cutouts_are_the_whole_image_and_no_share_draws_as_before():
    from clipgen.guidance.cutouts import Cutouts, crop_and_resize

    image = torch.rand(1, 3, 40, 40)
    cutouts = Cutouts(4, 1.0, (16,))
    whole = crop_and_resize(image, torch.tensor([[0.0, 0.0, 40.0, 40.0]]), 16)
    views = cutouts(image, overview=0.5)[16]
    assert torch.equal(views[0], whole[0]) and torch.equal(views[1], whole[0])
    torch.manual_seed(1)
    before = cutouts(image)[16]
    torch.manual_seed(1)
    assert torch.equal(cutouts(image, overview=0.0)[16], before)


def test_views_resampled_in_half_precision_are_fp32_views_within_its_rounding():
    image = torch.rand(1, 3, 40, 40, requires_grad=True)
    views = {}
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(2)
        views[dtype] = Cutouts(cutn=6, cut_pow=1.0, sizes=(24,), resample_dtype=dtype)(image)[24]
    assert views[torch.bfloat16].dtype == torch.float32
    assert not torch.equal(views[torch.bfloat16], views[torch.float32])  # it did run in bf16
    assert (views[torch.bfloat16] - views[torch.float32]).abs().max() < 2 ** -7  # bf16 keeps 8 bits
    views[torch.bfloat16].sum().backward()
    assert image.grad.dtype == torch.float32 and image.grad.abs().sum() > 0
