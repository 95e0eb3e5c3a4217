"""taming's decoder upsampling as one transposed convolution: the same map as doubling then
convolving, forward and backward."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("taming.modules.diffusionmodules.model", reason="needs the vqgan extra")
from taming.modules.diffusionmodules.model import Upsample  # noqa: E402

from clipgen.generators.vqgan.upsample import transposed_kernel, upsample_forward  # noqa: E402


def _frozen_upsample(channels: int, dtype=torch.float64, seed: int = 0) -> Upsample:
    torch.manual_seed(seed)
    return Upsample(channels, with_conv=True).to(dtype).eval().requires_grad_(False)


def _output_and_input_grad(forward, x: torch.Tensor, upstream_seed: int = 1):
    x = x.detach().clone().requires_grad_(True)
    out = forward(x)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(upstream_seed), dtype=out.dtype)
    out.backward(upstream)
    return out.detach(), x.grad


@pytest.mark.parametrize("height, width", [(5, 7), (1, 1), (4, 4)])
def test_the_transposed_convolution_is_doubling_then_convolving(height, width):
    upsample = _frozen_upsample(6)
    x = torch.randn(2, 6, height, width, dtype=torch.float64)
    want = _output_and_input_grad(Upsample.forward.__get__(upsample), x)
    have = _output_and_input_grad(lambda t: upsample_forward(upsample, t), x)
    assert have[0].shape == (2, 6, 2 * height, 2 * width)
    for expected, got in zip(want, have):
        assert torch.allclose(expected, got, atol=1e-12, rtol=1e-12)


def test_in_bf16_channels_last_it_stays_within_bf16s_rounding_of_fp32():
    reference = _frozen_upsample(32, torch.float32)
    upsample = _frozen_upsample(32, torch.float32).to(torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.rand(1, 32, 16, 16)
    want = Upsample.forward(reference, x)
    have = upsample_forward(upsample, x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert have.is_contiguous(memory_format=torch.channels_last)
    assert (have.float() - want).abs().max() <= 0.02 * want.abs().max()


def test_the_kernel_follows_the_weights_dtype_and_changes():
    upsample = _frozen_upsample(4)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    upsample_forward(upsample, x)
    upsample.conv.weight.mul_(2)  # changed in place: the kept kernel is stale
    assert torch.allclose(upsample_forward(upsample, x), Upsample.forward(upsample, x), atol=1e-12)
    upsample.float()
    assert upsample_forward(upsample, x.float()).dtype == torch.float32


def test_trainable_or_convolution_free_upsamplings_keep_tamings_two_steps():
    trainable = _frozen_upsample(4).requires_grad_(True)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    assert torch.equal(upsample_forward(trainable, x), Upsample.forward(trainable, x))
    assert "_transposed" not in trainable.__dict__
    plain = Upsample(4, with_conv=False)
    assert torch.equal(upsample_forward(plain, x), F.interpolate(x, scale_factor=2.0, mode="nearest"))


def test_the_kernel_sums_the_rows_each_output_phase_reads():
    weight = torch.arange(9, dtype=torch.float64).view(1, 1, 3, 3)  # rows (0 1 2), (3 4 5), (6 7 8)
    kernel = transposed_kernel(weight)[0, 0]
    # taps: row sums {2}, {1, 2}, {0, 1}, {0} of the 3×3 kernel, the same for columns
    assert kernel[0].tolist() == [8, 7 + 8, 6 + 7, 6]
    assert kernel[3].tolist() == [2, 1 + 2, 0 + 1, 0]
    assert kernel[1, 0].item() == 5 + 8 and kernel[2, 2].item() == 0 + 1 + 3 + 4


def test_a_loaded_vqgan_routes_its_upsamplings_through_the_transposed_convolution(tiny_vqgan):
    from clipgen.generators.vqgan.taming import load_vqgan

    model = load_vqgan(tiny_vqgan[0], tiny_vqgan[1], torch.device("cpu"))
    upsamplings = [m for m in model.modules() if isinstance(m, Upsample)]
    assert upsamplings and all(getattr(m.forward, "func", None) is upsample_forward for m in upsamplings)
