"""Doubling then a 3×3 convolution as one transposed convolution: the same map, forward and
backward, with its kernel kept until the weights change."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clipgen.generators.upsampling import doubled_then_convolved, transposed_kernel


def _frozen_conv(channels: int, dtype=torch.float64, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(channels, channels, 3, padding=1).to(dtype).eval().requires_grad_(False)


def _two_steps(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    return conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _output_and_input_grad(forward, x: torch.Tensor):
    x = x.detach().clone().requires_grad_(True)
    out = forward(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype))
    return out.detach(), x.grad


@pytest.mark.parametrize("height, width", [(5, 7), (1, 1), (4, 4)])
def test_the_transposed_convolution_is_doubling_then_convolving(height, width):
    conv = _frozen_conv(6)
    x = torch.randn(2, 6, height, width, dtype=torch.float64)
    want = _output_and_input_grad(lambda t: _two_steps(conv, t), x)
    have = _output_and_input_grad(lambda t: doubled_then_convolved(t, conv), x)
    assert have[0].shape == (2, 6, 2 * height, 2 * width)
    for expected, got in zip(want, have):
        assert torch.allclose(expected, got, atol=1e-12, rtol=1e-12)


def test_in_bf16_channels_last_it_stays_within_bf16s_rounding_of_fp32():
    reference = _frozen_conv(32, torch.float32)
    conv = _frozen_conv(32, torch.float32).to(torch.bfloat16).to(memory_format=torch.channels_last)
    x = torch.rand(1, 32, 16, 16)
    want = _two_steps(reference, x)
    have = doubled_then_convolved(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last), conv)
    assert have.is_contiguous(memory_format=torch.channels_last)
    assert (have.float() - want).abs().max() <= 0.02 * want.abs().max()


def test_the_kept_kernel_follows_the_weights_changes_and_dtype():
    conv = _frozen_conv(4)
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    doubled_then_convolved(x, conv)
    conv.weight.mul_(2)  # changed in place: the kept kernel is stale
    assert torch.allclose(doubled_then_convolved(x, conv), _two_steps(conv, x), atol=1e-12)
    conv.float()
    assert doubled_then_convolved(x.float(), conv).dtype == torch.float32


def test_trainable_or_other_convolutions_keep_the_two_steps():
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64)
    trainable = _frozen_conv(4).requires_grad_(True)
    strided = nn.Conv2d(4, 4, 3, padding=1, stride=2).double().requires_grad_(False)
    for conv in (trainable, strided):
        assert torch.equal(doubled_then_convolved(x, conv), _two_steps(conv, x))
        assert "_transposed" not in conv.__dict__


def test_the_kernel_sums_the_rows_each_output_phase_reads():
    weight = torch.arange(9, dtype=torch.float64).view(1, 1, 3, 3)  # rows (0 1 2), (3 4 5), (6 7 8)
    kernel = transposed_kernel(weight)[0, 0]
    # taps: row sums {2}, {1, 2}, {0, 1}, {0} of the 3×3 kernel, the same for columns
    assert kernel[0].tolist() == [8, 7 + 8, 6 + 7, 6]
    assert kernel[3].tolist() == [2, 1 + 2, 0 + 1, 0]
    assert kernel[1, 0].item() == 5 + 8 and kernel[2, 2].item() == 0 + 1 + 3 + 4
