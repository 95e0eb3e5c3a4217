"""taming's decoder ``Upsample`` through :func:`clipgen.generators.upsampling.doubled_then_convolved`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipgen.generators.upsampling import doubled_then_convolved


def upsample_forward(upsample: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """taming's ``Upsample.forward``: doubling, then its 3×3 convolution if it has one, as one
    transposed convolution where the convolution is frozen."""
    if upsample.with_conv:
        return doubled_then_convolved(x, upsample.conv)
    return F.interpolate(x, scale_factor=2.0, mode="nearest")
