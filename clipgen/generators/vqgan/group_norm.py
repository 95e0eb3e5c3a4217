"""GroupNorm for a frozen decoder stored channels-last in half precision on the CPU.

torch's CPU backward of ``group_norm`` for a channels-last bf16 input is several times
slower than its forward and than its own contiguous-layout backward: at 128 channels and
256² (a taming decoder's last level, seven of them per step), GroupNorm + SiLU forward and
backward took 55–72 ms against 2 ms for the forward alone (2-core AMD EPYC, Zen 4). The
forward here is torch's own kernel, bit for bit; the backward is the closed form, written
as per-channel sums and two fused multiply-adds over the activation, all in its
channels-last layout (21–25 ms for the same case; on a 2-core Zen 5 EPYC 36–41 → 15 ms,
and a VQGAN f16-16384 step at 256² with 32 ViT-B-32 cutouts 1.80 → 1.59 s).

With ``t = x − μ_g``, ``r_g = 1/σ_g`` and ``M`` the elements of a group, the input gradient
of ``y = w·t·r + b`` is ``r·w·dy − r·mean_g(w·dy) − r³·t·mean_g(w·dy·t)``: per-channel sums
``Σ dy`` and ``Σ dy·t`` give both group means. Working on ``t``, not ``x``, keeps a group
whose mean is large against its spread from cancelling in half precision.

The weights are frozen: no gradient for them is computed, so a GroupNorm with trainable
weights (or fp32, CUDA, or a contiguous input, where torch's own backward is fast) goes
through ``F.group_norm`` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_HALF = (torch.bfloat16, torch.float16)


class _FrozenGroupNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, groups: int, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        n, c, h, w = x.shape
        y, mean, rstd = torch.ops.aten.native_group_norm(x, weight, bias, n, c, h * w, groups, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.groups = groups
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight, mean, rstd = ctx.saved_tensors
        n, c, h, w = x.shape
        groups = ctx.groups
        per_group = c // groups
        size = h * w * per_group  # elements per group

        def per_channel(value: torch.Tensor) -> torch.Tensor:  # (n, groups[, k]) -> (n, c, 1, 1)
            return value.reshape(n, groups, -1).expand(n, groups, per_group).reshape(n, c, 1, 1)

        r = rstd.float().view(n, groups, 1)
        t = x - per_channel(mean)
        # Half-precision sums accumulate in fp32 on the CPU; summing with dtype=float32 would
        # first copy the whole activation to fp32.
        sum_dy = dy.sum((2, 3)).float().view(n, groups, per_group)
        sum_dy_t = (dy * t).sum((2, 3)).float().view(n, groups, per_group)
        wg = weight.float().view(1, groups, per_group)
        mean_w_dy = (wg * sum_dy).sum(-1, keepdim=True) / size
        mean_w_dy_t = (wg * sum_dy_t).sum(-1, keepdim=True) / size
        alpha = (r * wg).reshape(n, c, 1, 1).to(x.dtype)
        beta = per_channel(-r * r * r * mean_w_dy_t).to(x.dtype)
        gamma = per_channel(-r * mean_w_dy).to(x.dtype)
        dx = torch.addcmul(gamma, t, beta)
        dx.addcmul_(dy, alpha)
        return dx, None, None, None, None


def group_norm(module: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``, through the backward above where torch's is slow (see the module doc)."""
    fast_path = (x.device.type == "cpu" and x.dtype in _HALF and x.dim() == 4 and module.affine
                 and not module.weight.requires_grad and x.is_contiguous(memory_format=torch.channels_last))
    if fast_path:
        return _FrozenGroupNorm.apply(x, module.num_groups, module.weight, module.bias, module.eps)
    return F.group_norm(x, module.num_groups, module.weight, module.bias, module.eps)
