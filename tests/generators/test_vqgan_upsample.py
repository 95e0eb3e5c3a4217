"""taming's decoder upsampling goes through the one transposed convolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("taming.modules.diffusionmodules.model", reason="needs the vqgan extra")
from taming.modules.diffusionmodules.model import Upsample  # noqa: E402

from clipgen.generators.vqgan.upsample import upsample_forward  # noqa: E402


@pytest.mark.parametrize("with_conv", [True, False])
def test_tamings_upsample_computes_what_it_did(with_conv):
    torch.manual_seed(0)
    upsample = Upsample(4, with_conv=with_conv).double().requires_grad_(False)
    x = torch.randn(1, 4, 3, 5, dtype=torch.float64)
    assert torch.allclose(upsample_forward(upsample, x), Upsample.forward(upsample, x), atol=1e-12)
    assert ("_transposed" in upsample.conv.__dict__) if with_conv else upsample_forward(upsample, x).shape == (1, 4, 6, 10)


def test_a_loaded_vqgan_routes_its_upsamplings_through_the_transposed_convolution(tiny_vqgan):
    from clipgen.generators.vqgan.taming import load_vqgan

    model = load_vqgan(tiny_vqgan[0], tiny_vqgan[1], torch.device("cpu"))
    upsamplings = [m for m in model.modules() if isinstance(m, Upsample)]
    assert upsamplings and all(getattr(m.forward, "func", None) is upsample_forward for m in upsamplings)
    x = torch.randn(1, upsamplings[0].conv.in_channels, 4, 4)
    assert torch.allclose(upsamplings[0](x), upsamplings[0].conv(F.interpolate(x, scale_factor=2.0)), atol=1e-5)
